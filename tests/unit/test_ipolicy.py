"""Instance policies: the --ipolicy-* options in Ganeti's syntax, the master's checks of a
policy and its changes, and what breaks one."""

from __future__ import annotations

import argparse

import pytest

from cardume import constants, errors
from cardume.cli import ipolicy as cli_ipolicy
from cardume.rules import ipolicy
from cardume.rules.ipolicy import InstanceSpec

MIN = "memory-size=128,cpu-count=1,disk-count=1,disk-size=1024,nic-count=1,spindle-use=1"
MAX = "memory-size=4g,cpu-count=8,disk-count=16,disk-size=1048576,nic-count=8,spindle-use=12"
LOW = {"memory-size": 128, "cpu-count": 1, "disk-count": 1, "disk-size": 1024,
       "nic-count": 1, "spindle-use": 1}
HIGH = {"memory-size": 4096, "cpu-count": 8, "disk-count": 16, "disk-size": 1048576,
        "nic-count": 8, "spindle-use": 12}


def parsed(*argv: str, std: bool = True) -> dict[str, object] | None:
    parser = argparse.ArgumentParser()
    cli_ipolicy.add_options(parser, std=std)
    return cli_ipolicy.from_args(parser.parse_args(list(argv)))


# --- the command line ---------------------------------------------------------------------------

def test_bounds_specs_in_ganetis_syntax() -> None:
    assert parsed("--ipolicy-bounds-specs", f"min:{MIN}/max:{MAX}") == {
        "minmax": [{"min": LOW, "max": HIGH}]}
    # Ganeti's man page ends each half with a comma: "min:...,/max:...,"
    assert parsed("--ipolicy-bounds-specs", f"min:{MIN},/max:{MAX},") == {
        "minmax": [{"min": LOW, "max": HIGH}]}


def test_several_pairs_are_separated_by_a_double_slash() -> None:
    second = MIN.replace("memory-size=128", "memory-size=8192")
    policy = parsed("--ipolicy-bounds-specs",
                    f"min:{MIN}/max:{MAX}//min:{second}/max:{MAX.replace('4g', '16g')}")
    assert policy is not None
    pairs = policy["minmax"]
    assert isinstance(pairs, list)
    assert [(p["min"]["memory-size"], p["max"]["memory-size"]) for p in pairs] == [
        (128, 4096), (8192, 16384)]


@pytest.mark.parametrize(("value", "message"), [
    (f"min:{MIN}", "missing max specs in bounds specs pair 0"),
    (f"max:{MAX}", "missing min specs in bounds specs pair 0"),
    (f"min:{MAX}/max:{MIN}", "invalid bounds for memory-size in pair 0: min 4096 is above "
                             "max 128"),
    (f"min:{MIN},foo=3/max:{MAX}", "unknown spec 'foo'"),
    (f"min:{MIN}/max:{MAX}/std:{MIN}", "invalid key 'std' in --ipolicy-bounds-specs"),
    (f"min:{MIN}/max:{MAX}/min:{MIN}", "duplicate 'min' in pair 0"),
    (f"min:memory-size=abc/max:{MAX}", "invalid value 'abc' for memory-size"),
    ("min:memory-size=128/max:memory-size=512",
     "missing parameters in the min specs of pair 0: cpu-count, disk-count"),
    (f"min:{MIN.replace('cpu-count=1', 'cpu-count=1.5')}/max:{MAX}",
     "invalid value '1.5' for cpu-count"),
])
def test_bad_bounds_are_refused_naming_the_value(value: str, message: str) -> None:
    with pytest.raises(errors.WrongInput, match=message.replace(".", r"\.")) as caught:
        parsed("--ipolicy-bounds-specs", value)
    assert "\n" not in str(caught.value)


def test_std_specs_give_only_the_keys_they_name() -> None:
    assert parsed("--ipolicy-std-specs", "memory-size=256,cpu-count=2") == {
        "std": {"memory-size": 256, "cpu-count": 2}}
    assert parsed("--ipolicy-std-specs", "memory-size=0.5g") == {"std": {"memory-size": 512}}
    with pytest.raises(errors.WrongInput, match="duplicate spec 'memory-size'"):
        parsed("--ipolicy-std-specs", "memory-size=128,memory-size=256")
    with pytest.raises(errors.WrongInput, match="spec 'memory-size' .* has no value"):
        parsed("--ipolicy-std-specs", "memory-size")


def test_templates_and_ratios() -> None:
    assert parsed("--ipolicy-disk-templates", "file,diskless", "--ipolicy-vcpu-ratio", "2",
                  "--ipolicy-spindle-ratio", "2.5") == {
        "disk-templates": ["file", "diskless"], "vcpu-ratio": 2.0, "spindle-ratio": 2.5}
    with pytest.raises(errors.WrongInput, match="invalid disk template.*foo"):
        parsed("--ipolicy-disk-templates", "foo")
    with pytest.raises(errors.WrongInput,
                       match="invalid --ipolicy-vcpu-ratio 'abc': expected a number above 0"):
        parsed("--ipolicy-vcpu-ratio", "abc")
    with pytest.raises(errors.WrongInput, match="--ipolicy-spindle-ratio '-1'"):
        parsed("--ipolicy-spindle-ratio", "-1")


def test_default_hands_a_groups_key_back_to_the_cluster() -> None:
    assert parsed("--ipolicy-bounds-specs", "default", "--ipolicy-vcpu-ratio", "default",
                  "--ipolicy-disk-templates", "default", std=False) == {
        "minmax": None, "vcpu-ratio": None, "disk-templates": None}
    assert parsed() is None


def test_groups_have_no_std_specs_option() -> None:
    with pytest.raises(SystemExit):
        parsed("--ipolicy-std-specs", "memory-size=256", std=False)


# --- the master's checks ------------------------------------------------------------------------

def test_a_cluster_cannot_unset_a_key_a_group_can() -> None:
    with pytest.raises(errors.WrongInput,
                       match="can't unset instance policy key 'vcpu-ratio' on the cluster"):
        ipolicy.check_changes({"vcpu-ratio": None}, cluster=True)
    assert ipolicy.check_changes({"vcpu-ratio": "default"}, cluster=False) == {
        "vcpu-ratio": None}
    with pytest.raises(errors.WrongInput, match="std specs are set on the cluster only"):
        ipolicy.check_changes({"std": {"memory-size": 256}}, cluster=False)
    with pytest.raises(errors.WrongInput, match="unknown instance policy key 'colour'"):
        ipolicy.check_changes({"colour": "red"}, cluster=True)


def test_a_rapi_body_is_checked_as_the_command_line() -> None:
    with pytest.raises(errors.WrongInput, match="min 4096 is above max 128"):
        ipolicy.check_changes({"minmax": [{"min": HIGH, "max": LOW}]}, cluster=False)
    assert ipolicy.check_changes({"minmax": [{"min": LOW, "max": HIGH}],
                                  "spindle-ratio": 3}, cluster=True) == {
        "minmax": [{"min": LOW, "max": HIGH}], "spindle-ratio": 3.0}


def test_std_must_lie_within_the_bounds() -> None:
    policy = dict(constants.IPOLICY_DEFAULTS)
    ipolicy.check_filled(policy, check_std=True)
    policy["std"] = {**LOW, "memory-size": 64}
    with pytest.raises(errors.WrongInput, match="invalid std specs: not within the bounds "
                       r"specs \(memory-size value 64 is not in range \[128, 32768\]\)"):
        ipolicy.check_filled(policy, check_std=True)
    ipolicy.check_filled(policy, check_std=False)  # a group's std is the cluster's business


def test_templates_must_be_enabled() -> None:
    policy = {**constants.IPOLICY_DEFAULTS, "disk-templates": ["plain", "file"]}
    with pytest.raises(errors.WrongInput, match="allowed by the instance policy, but not "
                       "enabled on the cluster: plain"):
        ipolicy.check_filled(policy, check_std=True, enabled_templates=["file", "diskless"])


def test_std_changes_merge_over_the_std_in_force() -> None:
    own = ipolicy.apply_changes({"vcpu-ratio": 2.0}, {"std": {"memory-size": 256}},
                                std_base=constants.IPOLICY_DEFAULTS["std"])
    assert own["std"] == {**LOW, "memory-size": 256} and own["vcpu-ratio"] == 2.0
    assert ipolicy.apply_changes(own, {"vcpu-ratio": None}) == {"std": own["std"]}


# --- what breaks a policy -----------------------------------------------------------------------

def test_violations_in_ganetis_words() -> None:
    policy = {"minmax": [{"min": LOW, "max": {**HIGH, "memory-size": 200}}],
              "disk-templates": ["file"]}
    fits = InstanceSpec(memory=128, cpus=1, disk_sizes=(1024,), nic_count=1, spindles=1,
                        disk_template="file")
    assert ipolicy.violations(policy, fits) == []
    big = InstanceSpec(memory=256, cpus=9, disk_sizes=(1024,), nic_count=1, spindles=1,
                       disk_template="plain")
    assert ipolicy.violations(policy, big) == [
        "Disk template plain is not allowed (allowed templates: file)",
        "memory-size value 256 is not in range [128, 200]",
        "cpu-count value 9 is not in range [1, 8]"]
    assert ipolicy.group_violation_message("u-1", "default", ["x", "y"]) == (
        "Instance allocation to group u-1 (default) violates policy: x, y")


# --- gnt-cluster init ---------------------------------------------------------------------------

def test_init_allows_the_enabled_templates_and_takes_the_options() -> None:
    from cardume.master.bootstrap import InitOptions, _init_ipolicy
    opts = InitOptions(cluster_name="c.example.com", enabled_disk_templates=["file", "diskless"],
                       ipolicy={"std": {"memory-size": 256}, "vcpu-ratio": 2.0})
    assert _init_ipolicy(opts) == {"disk-templates": ["file", "diskless"],
                                   "std": {**LOW, "memory-size": 256}, "vcpu-ratio": 2.0}
    opts.ipolicy = {"disk-templates": ["plain"]}
    with pytest.raises(errors.WrongInput, match="not enabled on the cluster: plain"):
        _init_ipolicy(opts)
    opts.ipolicy = {"minmax": [{"min": LOW, "max": {**HIGH, "memory-size": 100}}]}
    with pytest.raises(errors.WrongInput, match="min 128 is above max 100"):
        _init_ipolicy(opts)
