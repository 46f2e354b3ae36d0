{#-
    interleaving_config(): the validated interleaving vars (dbt_project.yml block `interleaving`) as
    a dict. Every interleaving model calls it, so a bad value fails compilation with a message naming
    the var instead of producing wrong numbers:
      algorithm     team_draft | balanced | optimized (case-insensitive). The reference silently runs
                    team draft for an unknown name; the CLI does that mapping (and echoes the name)
                    before passing the var, so here an unknown name is an error.
      seed          integer (the coin key's first part; the CLI maps the reference's 0 to 42)
      max_results   integer; <= 0 means max(|A|, |B|) per request (reference §7.1)
      slice_keys    list of context keys (segments, reference §2.7)
      source        simulated (re-simulate from ranker_a / ranker_b, as the reference) | logged
                    (credit the logged interleaved lists, interleaved_exposure.v1)
      bootstrap     {iterations: integer in [1, 10000], ci_level: number in (0, 1)}
      max_steps     integer in [1, 1000]: the most picking steps the simulation unrolls; a request
                    whose list would be longer fails the build (set max_results)
    Not SQL, so not dispatched.
-#}
{% macro interleaving_config() -%}
    {%- set config = {} -%}

    {%- set algorithms = ['team_draft', 'balanced', 'optimized'] -%}
    {%- set algorithm = recsys_eval.config_var('recsys_eval__interleaving_algorithm', 'team_draft') -%}
    {%- set algorithm = 'team_draft' if algorithm is none else algorithm | string | trim | lower -%}
    {%- if algorithm not in algorithms -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__interleaving_algorithm must be one of " ~ algorithms | join(', ')
            ~ ", got: '" ~ algorithm ~ "'") }}
    {%- endif -%}
    {%- do config.update({'algorithm': algorithm}) -%}

    {%- for name, default, low, high in [('seed', 42, none, none), ('max_results', 0, none, none), ('max_steps', 100, 1, 1000)] -%}
        {%- set value = recsys_eval.config_var('recsys_eval__interleaving_' ~ name, default) -%}
        {%- set value = default if value is none else value -%}
        {%- if value is not number or value is boolean or (value | int) != value -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__interleaving_" ~ name ~ " must be an integer, got: " ~ value) }}
        {%- endif -%}
        {%- if (low is not none and value < low) or (high is not none and value > high) -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__interleaving_" ~ name ~ " must be in [" ~ low ~ ", " ~ high ~ "], got: " ~ value) }}
        {%- endif -%}
        {%- do config.update({name: value | int}) -%}
    {%- endfor -%}

    {%- do config.update({'slice_keys': recsys_eval.as_key_list(recsys_eval.config_var('recsys_eval__interleaving_slice_keys', []))}) -%}

    {%- set source = recsys_eval.config_var('recsys_eval__interleaving_source', 'simulated') -%}
    {%- set source = 'simulated' if source is none else source | string | trim | lower -%}
    {%- if source not in ['simulated', 'logged'] -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__interleaving_source must be 'simulated' or 'logged', got: '" ~ source ~ "'") }}
    {%- endif -%}
    {%- do config.update({'source': source}) -%}

    {%- set bootstrap = recsys_eval.config_var('recsys_eval__interleaving_bootstrap', {}) or {} -%}
    {%- if bootstrap is not mapping -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__interleaving_bootstrap must be a mapping {iterations, ci_level}, got: " ~ bootstrap) }}
    {%- endif -%}
    {%- for key in bootstrap -%}
        {%- if key not in ['iterations', 'ci_level'] -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__interleaving_bootstrap: unknown key '" ~ key ~ "' (known: ci_level, iterations)") }}
        {%- endif -%}
    {%- endfor -%}
    {%- set iterations = bootstrap.get('iterations', 200) -%}
    {%- if iterations is not number or iterations is boolean or (iterations | int) != iterations
        or iterations < 1 or iterations > 10000 -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__interleaving_bootstrap.iterations must be an integer in [1, 10000], got: " ~ iterations) }}
    {%- endif -%}
    {%- set ci_level = bootstrap.get('ci_level', 0.95) -%}
    {%- if ci_level is not number or ci_level is boolean or ci_level <= 0 or ci_level >= 1 -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__interleaving_bootstrap.ci_level must be a number in (0, 1), got: " ~ ci_level) }}
    {%- endif -%}
    {%- do config.update({'bootstrap_iterations': iterations | int, 'bootstrap_ci_level': ci_level}) -%}

    {{ return(config) }}
{%- endmacro %}
