"""Generate obp 0.5.7's synthetic slate data and run its slate estimators; write both as .npz.

Runs in .venv-obp (scripts/setup_obp), never in the main venv:

    .venv-obp/bin/python tests/python/obp_slate_reference.py OUT.npz N_ROUNDS SEED

obp.dataset.SyntheticSlateBanditDataset with a factorizable policy (each slot drawn independently
from the same softmax, so the joint propensity is the product of the per-slot marginals and the
cascade the product over the slots at or above) and a cascade_additive reward; the evaluation
policy is a softmax over other linear logits. The .npz holds the logged arrays (slate_id, position,
action, reward, and the logging / evaluation pscore, pscore_item_position, pscore_cascade, each
(n_rounds * len_list,)), the per-round obp round rewards (_estimate_round_rewards, per slot) and
obp's estimate_policy_value of SlateStandardIPS, SlateIndependentIPS and SlateRewardInteractionIPS.
"""

from __future__ import annotations

import sys

import numpy as np
import obp
from obp.dataset import SyntheticSlateBanditDataset, linear_behavior_policy_logit
from obp.ope import SlateIndependentIPS, SlateRewardInteractionIPS, SlateStandardIPS

LEN_LIST = 3
N_ACTIONS = 5


def main(out: str, n_rounds: int, seed: int) -> None:
    dataset = SyntheticSlateBanditDataset(
        n_unique_action=N_ACTIONS,
        len_list=LEN_LIST,
        dim_context=2,
        reward_type="binary",
        reward_structure="cascade_additive",
        click_model=None,
        behavior_policy_function=linear_behavior_policy_logit,
        is_factorizable=True,
        random_state=seed,
    )
    fb = dataset.obtain_batch_bandit_feedback(n_rounds=n_rounds, return_pscore_item_position=True)
    rng = np.random.default_rng(seed + 1)
    coef = rng.normal(size=(fb["context"].shape[1], N_ACTIONS))
    evaluation_logit = fb["context"] @ coef
    e_pscore, e_item_position, e_cascade = dataset.obtain_pscore_given_evaluation_policy_logit(
        action=fb["action"], evaluation_policy_logit_=evaluation_logit
    )
    common = {"slate_id": fb["slate_id"], "reward": fb["reward"], "position": fb["position"]}
    sips = SlateStandardIPS(len_list=LEN_LIST)
    iips = SlateIndependentIPS(len_list=LEN_LIST)
    rips = SlateRewardInteractionIPS(len_list=LEN_LIST)
    values = {
        "slate_standard_ips": sips.estimate_policy_value(
            **common, pscore=fb["pscore"], evaluation_policy_pscore=e_pscore
        ),
        "slate_independent_ips": iips.estimate_policy_value(
            **common,
            pscore_item_position=fb["pscore_item_position"],
            evaluation_policy_pscore_item_position=e_item_position,
        ),
        "slate_rips": rips.estimate_policy_value(
            **common,
            pscore_cascade=fb["pscore_cascade"],
            evaluation_policy_pscore_cascade=e_cascade,
        ),
    }
    round_rewards = {
        "round_slate_standard_ips": sips._estimate_round_rewards(
            reward=fb["reward"], position=fb["position"], behavior_policy_pscore=fb["pscore"],
            evaluation_policy_pscore=e_pscore,
        ),
        "round_slate_independent_ips": iips._estimate_round_rewards(
            reward=fb["reward"], position=fb["position"],
            behavior_policy_pscore=fb["pscore_item_position"],
            evaluation_policy_pscore=e_item_position,
        ),
        "round_slate_rips": rips._estimate_round_rewards(
            reward=fb["reward"], position=fb["position"], behavior_policy_pscore=fb["pscore_cascade"],
            evaluation_policy_pscore=e_cascade,
        ),
    }  # fmt: skip
    np.savez(
        out,
        obp_version=np.array(obp.__version__),
        len_list=LEN_LIST,
        slate_id=fb["slate_id"],
        position=fb["position"],
        action=fb["action"],
        reward=fb["reward"],
        pscore=fb["pscore"],
        pscore_item_position=fb["pscore_item_position"],
        pscore_cascade=fb["pscore_cascade"],
        evaluation_pscore=e_pscore,
        evaluation_pscore_item_position=e_item_position,
        evaluation_pscore_cascade=e_cascade,
        **{f"value_{k}": np.array(v) for k, v in values.items()},
        **round_rewards,
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
