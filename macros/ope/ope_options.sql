{#-
    ope_options(): var recsys_eval__ope, validated at compile time, with the reference's defaults
    (§6.1) filled in. Not SQL, not dispatched. Keys:
      reward_event        click | conversion (default click)
      unit                item | request (default request)
      reward_aggregation  sum | max (request unit; default sum)
      top_k               integer; <= 0 keeps every item (default 0)
      clipping            number; <= 0 = no clipping (default 0)
      min_propensity      number > 0; diagnostic threshold only (default 1e-6; 0 -> 1e-6)
      position_discount   'log2' or anything else = none (default none)
      allow_missing_target_propensity  bool (default false): target = logging (w = 1)
      reward_model        exposure (default) | reference: how rewards and the DR/DM model are built
                          (docs/ope.md; `reference` reproduces the reference's numbers)
      slice_keys          exposure context keys of the per-segment estimates (default [])
      reward_model_terms  bool (default true): compute model_logged / model_target, the reward model's
                          terms of DM, DR, SNDR and Switch-DR; the CLI passes false when no requested
                          estimator uses them, so the reward model and its pass over the items are skipped
      switch_threshold    number > 0: Switch-DR's tau, the weight above which the residual is dropped
                          (default 10; int_recsys_eval__ope_group_sums)
      bootstrap_blocks    integer >= 1: the bootstrap's most blocks G (default 10000;
                          int_recsys_eval__ope_block_sums)
      slate               bool (default false): build the slate estimators' models (int_recsys_eval__ope_slates,
                          _slate_sums, _slate_bootstrap); false: they have no rows and read nothing
      slate_bootstrap_iterations  integer >= 0 (default 0): Poisson bootstrap replicates of the slate estimators
      slate_bootstrap_seed        integer (default 42): their seed
-#}
{% macro ope_options() -%}
    {%- set configured = recsys_eval.config_var('recsys_eval__ope', {}) or {} -%}
    {%- if configured is not mapping -%}
        {{ exceptions.raise_compiler_error("var recsys_eval__ope must be a mapping, got: " ~ configured) }}
    {%- endif -%}
    {%- set known = ['reward_event', 'unit', 'reward_aggregation', 'top_k', 'clipping', 'min_propensity',
        'position_discount', 'allow_missing_target_propensity', 'reward_model', 'slice_keys',
        'reward_model_terms', 'switch_threshold', 'bootstrap_blocks'] -%}
    {%- set known = known + ['slate', 'slate_bootstrap_iterations', 'slate_bootstrap_seed'] -%}
    {%- for key in configured -%}
        {%- if key not in known -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__ope: unknown key " ~ key ~ " (known: " ~ known | join(', ') ~ ")") }}
        {%- endif -%}
    {%- endfor -%}
    {%- set options = {
        'reward_event': (configured.get('reward_event') or 'click') | string | trim | lower,
        'unit': (configured.get('unit') or 'request') | string | trim | lower,
        'reward_aggregation': (configured.get('reward_aggregation') or 'sum') | string | trim | lower,
        'top_k': configured.get('top_k', 0) or 0,
        'clipping': configured.get('clipping', 0) or 0,
        'min_propensity': configured.get('min_propensity', 0.000001) or 0.000001,
        'position_discount': (configured.get('position_discount') or 'none') | string | trim | lower,
        'allow_missing_target_propensity': configured.get('allow_missing_target_propensity', false) or false,
        'reward_model': (configured.get('reward_model') or 'exposure') | string | trim | lower,
        'slice_keys': configured.get('slice_keys') or [],
        'reward_model_terms': configured.get('reward_model_terms', true),
        'switch_threshold': configured.get('switch_threshold', 10) or 10,
        'bootstrap_blocks': configured.get('bootstrap_blocks', 10000) or 10000,
    } -%}
    {%- set choices = {
        'reward_event': ['click', 'conversion'],
        'unit': ['item', 'request'],
        'reward_aggregation': ['sum', 'max'],
        'reward_model': ['exposure', 'reference'],
    } -%}
    {%- for key, allowed in choices.items() -%}
        {%- if options[key] not in allowed -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__ope." ~ key ~ " must be " ~ allowed | join(' or ') ~ ", got: " ~ options[key]) }}
        {%- endif -%}
    {%- endfor -%}
    {%- for key in ['top_k', 'clipping', 'min_propensity', 'switch_threshold', 'bootstrap_blocks'] -%}
        {#- --vars is read as YAML 1.1, where 1e-06 (no dot) is a string: accept numeric strings -#}
        {%- if options[key] is string and modules.re.match('^[-+]?[0-9]*[.]?[0-9]+([eE][-+]?[0-9]+)?$', options[key]) -%}
            {%- do options.update({key: options[key] | float}) -%}
        {%- endif -%}
        {%- if options[key] is boolean or options[key] is not number -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__ope." ~ key ~ " must be a number, got: " ~ options[key]) }}
        {%- endif -%}
    {%- endfor -%}
    {%- if options['min_propensity'] < 0 -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__ope.min_propensity must be >= 0, got: " ~ options['min_propensity']) }}
    {%- endif -%}
    {%- if options['switch_threshold'] <= 0 -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__ope.switch_threshold must be > 0, got: " ~ options['switch_threshold']) }}
    {%- endif -%}
    {%- if options['bootstrap_blocks'] < 1 or options['bootstrap_blocks'] != options['bootstrap_blocks'] | int -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__ope.bootstrap_blocks must be an integer >= 1, got: " ~ options['bootstrap_blocks']) }}
    {%- endif -%}
    {%- do options.update({'bootstrap_blocks': options['bootstrap_blocks'] | int}) -%}
    {%- if options['reward_model_terms'] is not boolean -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__ope.reward_model_terms must be true or false, got: " ~ options['reward_model_terms']) }}
    {%- endif -%}
    {%- if options['allow_missing_target_propensity'] is not boolean -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__ope.allow_missing_target_propensity must be true or false, got: "
            ~ options['allow_missing_target_propensity']) }}
    {%- endif -%}
    {#- the slate estimators (docs/ope.md, "Slate OPE") -#}
    {%- do options.update({
        'slate': configured.get('slate', false),
        'slate_bootstrap_iterations': configured.get('slate_bootstrap_iterations', 0),
        'slate_bootstrap_seed': configured.get('slate_bootstrap_seed', 42),
    }) -%}
    {%- if options['slate'] is not boolean -%}
        {{ exceptions.raise_compiler_error(
            "var recsys_eval__ope.slate must be true or false, got: " ~ options['slate']) }}
    {%- endif -%}
    {%- for key in ['slate_bootstrap_iterations', 'slate_bootstrap_seed'] -%}
        {%- if options[key] is boolean or options[key] is not integer -%}
            {{ exceptions.raise_compiler_error(
                "var recsys_eval__ope." ~ key ~ " must be an integer, got: " ~ options[key]) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(options) }}
{%- endmacro %}
