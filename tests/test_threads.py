"""torch's threads sized to this process's share of the machine: TUTORLIB_THREADS, affinity, cgroup quota."""

import os
import subprocess
import sys

import pytest

from tutorlib.loading.threads import ThreadsSettingError, cgroup_cpu_quota, choose_threads


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", " "])
def test_a_bad_setting_is_refused_with_the_variable_and_the_choices(value):
    if not value.strip():  # blank means unset: no error
        assert choose_threads({"TUTORLIB_THREADS": value}, cpus=3, quota=None).threads == 3
        return
    with pytest.raises(ThreadsSettingError) as err:
        choose_threads({"TUTORLIB_THREADS": value})
    text = str(err.value)
    assert "TUTORLIB_THREADS" in text and repr(value) in text and "whole number" in text and "'torch'" in text


def test_the_setting_wins_over_the_machine():
    choice = choose_threads({"TUTORLIB_THREADS": "3"}, cpus=64, quota=1.0)
    assert choice.threads == 3 and "TUTORLIB_THREADS=3" in choice.why


def test_torch_keeps_its_own_choice_and_so_does_omp_num_threads():
    assert choose_threads({"TUTORLIB_THREADS": "torch"}, cpus=8, quota=None).threads is None
    choice = choose_threads({"OMP_NUM_THREADS": "5"}, cpus=8, quota=None)
    assert choice.threads is None and "OMP_NUM_THREADS=5" in choice.why
    assert choose_threads({"OMP_NUM_THREADS": "5", "TUTORLIB_THREADS": "2"}, cpus=8, quota=None).threads == 2


@pytest.mark.parametrize("cpus, quota, threads, reason", [
    (8, None, 8, "8 CPUs this process may run on"),  # a laptop: every core
    (8, 2.5, 2, "quota of 2.5 CPUs"),  # a JupyterHub cpu_limit of 2.5: rounded down
    (8, 0.5, 1, "quota of 0.5 CPUs"),  # never fewer than one thread
    (2, 4.0, 2, "2 CPUs this process may run on"),  # a quota above the affinity: the affinity decides
])
def test_auto_takes_the_smaller_of_affinity_and_quota(cpus, quota, threads, reason):
    for env in ({}, {"TUTORLIB_THREADS": "auto"}):
        choice = choose_threads(env, cpus=cpus, quota=quota)
        assert choice.threads == threads and reason in choice.why


def _cgroup(tmp_path, membership: str, files: dict) -> float | None:
    for name, text in files.items():
        path = tmp_path / "fs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "cgroup").write_text(membership)
    return cgroup_cpu_quota(tmp_path / "fs", tmp_path / "cgroup")


def test_cgroup_v2_cpu_max(tmp_path):
    assert _cgroup(tmp_path, "0::/user/learner7\n", {"user/learner7/cpu.max": "150000 100000\n"}) == 1.5


def test_cgroup_v2_no_limit_and_a_parent_limit(tmp_path):
    files = {"hub/learner/cpu.max": "max 100000\n", "hub/cpu.max": "400000 100000\n"}
    assert _cgroup(tmp_path, "0::/hub/learner\n", files) == 4.0  # the parent's limit applies to its children


def test_cgroup_v1_quota_and_period_in_a_container(tmp_path):
    membership = "4:memory:/x\n1:cpu,cpuacct:/\n0::/\n"  # in a container the path is "/"
    files = {"cpu,cpuacct/cpu.cfs_quota_us": "200000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}
    assert _cgroup(tmp_path, membership, files) == 2.0
    files["cpu,cpuacct/cpu.cfs_quota_us"] = "-1\n"  # v1's "no limit"
    assert _cgroup(tmp_path, membership, files) is None


def test_no_cgroup_information_means_no_limit(tmp_path):
    assert cgroup_cpu_quota(tmp_path / "none", tmp_path / "no-such-file") is None


def _python(code: str, **env) -> str:
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_applied_by_the_first_model_load_not_by_the_import():
    code = ("import torch, tutorlib; from tutorlib.loading import threads, models; "
            "before = threads._applied; models.load_model('tiny-gpt2'); "
            "print(before, torch.get_num_threads())")
    assert _python(code, TUTORLIB_THREADS="1").split() == ["None", "1"]
    assert _python(code, TUTORLIB_THREADS="3").split() == ["None", "3"]


def test_doctor_says_what_it_chose_and_why():
    out = _python("from tutorlib.cli import main; main(['doctor'])", TUTORLIB_THREADS="3")
    assert "threads       3 (TUTORLIB_THREADS=3" in out
    done = subprocess.run([sys.executable, "-m", "tutorlib", "doctor"], capture_output=True, text=True,
                          env={**os.environ, "TUTORLIB_THREADS": "many"})
    assert done.returncode == 2 and "TUTORLIB_THREADS='many' is not a thread count" in done.stderr
