"""Run obp 0.5.7 (the Open Bandit Pipeline) on arrays from an .npz file; print its estimates as JSON.

Runs in .venv-obp (scripts/setup_obp), never in the main venv:

    .venv-obp/bin/python tests/python/obp_reference.py logs.npz

The .npz holds reward (n,), action (n,) int, pscore (n,), action_dist (n, n_actions, 1) (the target
policy), q_hat (n, n_actions, 1) (the reward model's predictions, the same ones recsys-eval used) and
switch_lambda (scalar). Output: {"ips": ..., "snips": ..., "dm": ..., "dr": ..., "sndr": ...,
"switch_dr": ..., "obp_version": ...}.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import obp
from obp.ope import (
    DirectMethod,
    DoublyRobust,
    InverseProbabilityWeighting,
    SelfNormalizedDoublyRobust,
    SelfNormalizedInverseProbabilityWeighting,
    SwitchDoublyRobust,
)


def main(path: str) -> None:
    data = np.load(path)
    common = {
        "reward": data["reward"],
        "action": data["action"].astype(int),
        "action_dist": data["action_dist"],
    }
    with_pscore = {**common, "pscore": data["pscore"]}
    q_hat = data["q_hat"]
    out = {
        "obp_version": obp.__version__,
        "ips": InverseProbabilityWeighting(lambda_=np.inf).estimate_policy_value(**with_pscore),
        "snips": SelfNormalizedInverseProbabilityWeighting().estimate_policy_value(**with_pscore),
        "dm": DirectMethod().estimate_policy_value(
            action_dist=data["action_dist"], estimated_rewards_by_reg_model=q_hat
        ),
        "dr": DoublyRobust(lambda_=np.inf).estimate_policy_value(
            **with_pscore, estimated_rewards_by_reg_model=q_hat
        ),
        "sndr": SelfNormalizedDoublyRobust().estimate_policy_value(
            **with_pscore, estimated_rewards_by_reg_model=q_hat
        ),
        "switch_dr": SwitchDoublyRobust(lambda_=float(data["switch_lambda"])).estimate_policy_value(
            **with_pscore, estimated_rewards_by_reg_model=q_hat
        ),
    }
    print(json.dumps({k: (float(v) if k != "obp_version" else v) for k, v in out.items()}))


if __name__ == "__main__":
    main(sys.argv[1])
