import numpy as np
import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", ["cot_ray/MTP-v0", "cot_ray/RMTP-v0"])
def test_env_from_rllib_registry_plays_an_expert_episode(name):
    from ray.tune.registry import ENV_CREATOR, _global_registry

    from cot_ray.rl.envs import register_rllib_envs

    assert name in register_rllib_envs()
    env = _global_registry.get(ENV_CREATOR, name)({"task": "mult", "difficulty": "id-hard", "seed": 4})
    obs, info = env.reset(seed=4)
    assert env.observation_space.contains(obs)
    total, done, steps = 0.0, False, 0
    while not done:
        step = env.task.expert_step(info["state"])
        label = env.task.verify(info["state"], step).text()
        action = env.encode_action(step + "}" + (f"|{label}|" if env.reflective else ""))
        assert env.action_space.contains(action)
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        done = terminated or truncated
        steps += 1
    assert total == 1.0 and info["correct"] and steps >= 2


def test_rmtp_env_keeps_the_state_on_a_negative_verification():
    from cot_ray.mtp.env import RMTPEnv

    env = RMTPEnv({"task": "mult", "seed": 0})
    obs, info = env.reset(seed=0)
    step = env.task.expert_step(info["state"])
    obs2, reward, terminated, truncated, info2 = env.step(env.encode_action(step + "}|✗|"))
    assert info2["rejected"] and np.array_equal(obs, obs2) and not terminated


def test_malformed_action_ends_the_episode_without_raising():
    from cot_ray.mtp.env import MTPEnv

    env = MTPEnv({"task": "sudoku"})
    env.reset(seed=1)
    _, reward, terminated, _, info = env.step(np.full(env.max_len, 7, dtype=np.int64))
    assert terminated and reward == 0.0 and info["error"]


def test_gymnasium_make_works():
    import gymnasium as gym

    from cot_ray.mtp.env import register_gymnasium

    register_gymnasium()
    env = gym.make("cot_ray/MTP-v0", task="sudoku", difficulty="id-easy")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (512,)
