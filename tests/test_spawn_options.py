"""Spawn options: policy matrix, validation of every field, and the pod settings they give."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinfn_hub.config import PlatformConfig, load_platform_config
from aiinfn_hub.inventory.availability import ModelAvailability, ServerAvailability
from aiinfn_hub.platform import entitlements as policy
from aiinfn_hub.platform.entitlements import UserContext
from aiinfn_hub.spawner.form_render import render_form
from aiinfn_hub.spawner.form_view import KIND_HINTS, memory_label
from aiinfn_hub.spawner.options import (
    FIELDS,
    OptionsError,
    ServerChoice,
    form_to_options,
    validate_options,
)
from aiinfn_hub.spawner.pod_settings import RESTRICTED_CONTAINER_SECURITY, pod_settings

CONFIG = load_platform_config(Path(__file__).resolve().parent.parent / "examples" / "platform.yaml")
NOBODY = UserContext("nobody", frozenset())
ML = UserContext("ada", frozenset({"ml-infn"}))
CMS = UserContext("carl", frozenset({"cms", "unrelated-group"}))
QML = UserContext("quinn", frozenset({"qml", "cms"}))


def _availability(free: int = 1) -> list[ModelAvailability]:
    """Every catalogue model on two servers, ``free`` units free on server-b."""
    return [
        ModelAvailability(
            a.name,
            a.description,
            a.kind,
            a.memory_gib,
            4,
            free,
            (ServerAvailability("server-a", 2, 0), ServerAvailability("server-b", 2, free)),
        )
        for a in CONFIG.accelerators
    ]


def _error(options: dict[str, Any], user: UserContext = ML, free: int = 2) -> str:
    with pytest.raises(OptionsError) as exc:
        validate_options(options, CONFIG, user, _availability(free))
    return str(exc.value)


# -- policy ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("user", "images", "max_cpu", "max_memory", "accelerators"),
    [
        (NOBODY, ["base", "cuda-ml"], 2, "8Gi", []),
        (ML, ["base", "cuda-ml"], 16, "64Gi", [a.name for a in CONFIG.accelerators]),
        (CMS, ["base", "cuda-ml"], 8, "32Gi", ["a100-1g-10gb", "a30", "rtx5000", "t4"]),
        (
            QML,
            ["base", "cuda-ml", "qml"],
            16,
            "64Gi",
            ["a100", "a100-3g-40gb", "a100-1g-10gb", "a30", "rtx5000", "t4"],
        ),
    ],
)
def test_policy_matrix(
    user: UserContext, images: list[str], max_cpu: float, max_memory: str, accelerators: list[str]
) -> None:
    assert [i.name for i in policy.allowed_images(CONFIG, user)] == images
    assert max(policy.allowed_cpus(CONFIG, user)) == max_cpu
    assert policy.allowed_memory(CONFIG, user)[-1] == max_memory
    assert sorted(a.name for a in policy.allowed_accelerators(CONFIG, user)) == sorted(accelerators)


def test_units_per_server_are_capped_by_model_and_project() -> None:
    t4 = CONFIG.accelerator("t4")
    a100 = CONFIG.accelerator("a100")
    assert t4 is not None and a100 is not None
    assert policy.max_units(CONFIG, ML, t4) == 2  # model allows 4, ml-infn maxGpus 2
    assert policy.max_units(CONFIG, CMS, t4) == 1
    assert policy.max_units(CONFIG, CMS, a100) == 0  # not in cms's list
    assert policy.max_units(CONFIG, NOBODY, t4) == 0


# -- validation ------------------------------------------------------------------------------
def test_defaults_fill_missing_fields() -> None:
    choice = validate_options({}, CONFIG, ML, _availability())
    assert (choice.image.name, choice.cpu, choice.memory, choice.accelerator) == (
        "base",
        2,
        "8Gi",
        None,
    )
    assert choice.to_user_options()["accelerator"] == "none"


def test_a_full_valid_choice() -> None:
    options = {
        "image": "cuda-ml",
        "cpu": "8",
        "memory": "32Gi",
        "accelerator": "t4",
        "count": "2",
        "server": "server-b",
    }
    choice = validate_options(options, CONFIG, ML, _availability(free=2))
    assert choice.accelerator is not None and choice.accelerator.name == "t4"
    assert (choice.count, choice.server, choice.cpu) == (2, "server-b", 8.0)


@pytest.mark.parametrize(
    ("options", "user", "message"),
    [
        (
            {"image": "evil/image:latest"},
            ML,
            "image 'evil/image:latest' is not available to you; choose one of: base, cuda-ml",
        ),
        ({"image": "qml"}, CMS, "image 'qml' is not available to you"),
        ({"cpu": "3"}, ML, "cpu 3 is not allowed; choose one of: 1, 2, 4, 8, 16"),
        ({"cpu": "16"}, CMS, "cpu 16 is not allowed; choose one of: 1, 2, 4, 8"),
        ({"cpu": "lots"}, ML, "cpu must be a number (got 'lots')"),
        ({"cpu": True}, ML, "cpu must be a number (got a boolean)"),
        ({"memory": "1Ti"}, ML, "memory '1Ti' is not allowed"),
        ({"memory": 8}, ML, "memory must be a string (got int)"),
        ({"accelerator": "h100"}, ML, "accelerator 'h100' is not available to you"),
        ({"accelerator": "a100", "image": "cuda-ml"}, CMS, "accelerator 'a100' is not available"),
        (
            {"accelerator": "t4"},
            NOBODY,
            "accelerator 't4' is not available to you; choose one of: none",
        ),
        (
            {"accelerator": "t4", "image": "cuda-ml", "count": "3"},
            ML,
            "count must be between 1 and 2 for t4",
        ),
        ({"accelerator": "t4", "image": "cuda-ml", "count": "0"}, ML, "count must be between"),
        ({"accelerator": "t4", "image": "cuda-ml", "count": "1.5"}, ML, "whole number"),
        (
            {"accelerator": "t4", "image": "cuda-ml", "server": "server-z"},
            ML,
            "server 'server-z' does not offer t4 to you; choose one of: server-a, server-b",
        ),
        (
            {"accelerator": "t4", "image": "cuda-ml", "server": "server-a"},
            ML,
            "server server-a has 0 t4 free",
        ),
        ({"accelerator": "t4", "image": "base"}, ML, "image 'base' has no CUDA"),
        ({"server": "server-a"}, ML, "a server can only be pinned together with an accelerator"),
        ({"count": "2"}, ML, "count needs an accelerator"),
        ({"gpus": "8"}, ML, "unknown option(s) 'gpus'; allowed: image, cpu, memory"),
    ],
)
def test_bad_options_say_what_is_allowed(
    options: dict[str, Any], user: UserContext, message: str
) -> None:
    assert message in _error(options, user)


def test_nothing_free_is_refused() -> None:
    message = _error({"accelerator": "t4", "image": "cuda-ml", "count": "2"}, ML, free=1)
    assert message == (
        "no server has 2 t4 free right now (at most 1 on one server); ask for "
        "fewer or try again later"
    )


def test_fpgas_need_no_cuda_image() -> None:
    choice = validate_options(
        {"accelerator": "u250"}, CONFIG, UserContext("f", frozenset({"fpga-lab"})), _availability()
    )
    assert choice.accelerator is not None and choice.accelerator.kind == "fpga"


def test_form_posts_send_each_field_once() -> None:
    assert form_to_options({"cpu": ["2"], "image": ["base"]}) == {"cpu": "2", "image": "base"}
    with pytest.raises(OptionsError, match="sent 2 times"):
        form_to_options({"cpu": ["2", "16"]})
    # the hub's spawn page posts its anti-forgery token with the form: not an option
    assert form_to_options({"cpu": ["2"], "_xsrf": ["2|abc"]}) == {"cpu": "2"}


_values = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.integers(-5, 100),
    st.floats(allow_nan=True),
    st.booleans(),
    st.lists(st.text(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from([*FIELDS, "gpus", "__proto__"]), _values, max_size=7),
    st.sampled_from([NOBODY, ML, CMS, QML]),
)
def test_tampered_posts_either_validate_within_the_allow_lists_or_are_refused(
    options: dict[str, Any], user: UserContext
) -> None:
    try:
        choice = validate_options(options, CONFIG, user, _availability(free=2))
    except OptionsError as exc:
        assert str(exc)  # a message for the user, never another exception
        return
    assert choice.image in policy.allowed_images(CONFIG, user)
    assert choice.cpu in policy.allowed_cpus(CONFIG, user)
    assert choice.memory in policy.allowed_memory(CONFIG, user)
    if choice.accelerator is not None:
        assert choice.accelerator in policy.allowed_accelerators(CONFIG, user)
        assert 1 <= choice.count <= policy.max_units(CONFIG, user, choice.accelerator)


# -- pod settings ----------------------------------------------------------------------------
def _config_with_toleration() -> PlatformConfig:
    data = CONFIG.model_dump(by_alias=True, exclude_none=True)
    data["accelerators"][0]["tolerations"] = [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    return PlatformConfig.model_validate(data)


def test_pod_settings_for_a_gpu_server() -> None:
    config = _config_with_toleration()
    choice = validate_options(
        {
            "image": "cuda-ml",
            "cpu": 4,
            "memory": "16Gi",
            "accelerator": "a100",
            "count": 2,
            "server": "server-b",
        },
        config,
        ML,
        _availability(free=2),
    )
    s = pod_settings(choice, config, ML, priority_class="notebook")
    assert s["image"] == "harbor.cloud.infn.it/ai-infn/cuda-ml:2026.11"
    assert (s["cpu_limit"], s["cpu_guarantee"]) == (4, 2)  # guaranteeFraction 0.5
    assert (s["mem_limit"], s["mem_guarantee"]) == (16 * 2**30, 8 * 2**30)
    assert s["extra_resource_limits"] == {"nvidia.com/gpu": "2"}
    assert s["node_affinity_required"] == [
        {
            "matchExpressions": [
                {
                    "key": "nvidia.com/gpu.product",
                    "operator": "In",
                    "values": ["NVIDIA-A100-SXM4-80GB"],
                },
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["server-b"]},
            ]
        }
    ]
    assert s["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        # ml-infn members may use nodes reserved for ml-infn
        {"key": "reserved", "operator": "Equal", "value": "ml-infn", "effect": "NoSchedule"},
    ]
    assert s["priority_class_name"] == "notebook"
    assert s["extra_labels"]["aiinfn.infn.it/accelerator"] == "a100"
    assert s["extra_annotations"]["aiinfn.infn.it/projects"] == "ml-infn"
    assert s["container_security_context"] == RESTRICTED_CONTAINER_SECURITY
    assert s["automount_service_account_token"] is False


def test_pod_settings_without_accelerator() -> None:
    choice = ServerChoice(CONFIG.images[0], 1.0, "4Gi")
    s = pod_settings(choice, CONFIG, NOBODY, priority_class=None)
    assert s["extra_resource_limits"] == {} and s["node_affinity_required"] == []
    assert "priority_class_name" not in s
    assert s["extra_labels"]["aiinfn.infn.it/accelerator"] == "none"


_form_values = st.lists(
    st.one_of(
        st.text(max_size=10),
        st.sampled_from(
            ["t4", "a100", "cuda-ml", "base", "qml", "16", "2", "8Gi", "none", "server-b", "-1"]
        ),
    ),
    min_size=0,
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*FIELDS, "_xsrf", "gpus"]), _form_values, max_size=7))
def test_tampered_form_posts_are_refused_or_allowed(form: dict[str, list[str]]) -> None:
    """Whatever a browser (or curl) posts: an allowed choice, or OptionsError, nothing else."""
    try:
        choice = validate_options(form_to_options(form), CONFIG, CMS, _availability(free=2))
    except OptionsError:
        return
    assert choice.image in policy.allowed_images(CONFIG, CMS)
    assert choice.cpu in policy.allowed_cpus(CONFIG, CMS)
    if choice.accelerator is not None:
        assert choice.accelerator in policy.allowed_accelerators(CONFIG, CMS)


def _soup(html: str) -> Any:
    from bs4 import BeautifulSoup

    return BeautifulSoup(html, "html.parser")


def test_form_rendering_from_a_fixed_inventory() -> None:
    models = [m for m in _availability(free=0) if m.name in ("t4", "a30")]
    previous = {"image": "cuda-ml", "cpu": 4, "memory": "16Gi", "accelerator": "a30"}
    html = render_form(CONFIG, CMS, models, previous)
    form = _soup(html)
    assert form.find(id="image-cuda-ml").has_attr("checked")
    assert '<option value="4" selected>' in html and '<option value="16Gi" selected>' in html
    assert "0 of 4 free" in html and "Unavailable: all 4 in use by notebooks." in html
    assert form.find(id="accelerator-t4").has_attr("disabled")
    # a30 is no longer free: the form does not pre-select what cannot start
    assert form.find(id="accelerator-none").has_attr("checked")
    assert 'value="qml"' not in html  # not one of cms's images
    assert "server-a (0/2), server-b (0/2)" in html


def test_memory_is_shown_in_plain_words_with_the_exact_quantity_as_value() -> None:
    assert [memory_label(q) for q in ("8Gi", "512Mi", "16G", "1Ti", "1073741824")] == [
        "8 GB",
        "0.5 GB",
        "16 GB",
        "1024 GB",
        "1 GB",
    ]
    form = _soup(render_form(CONFIG, ML, _availability(), {}))
    options = {o["value"]: o.get_text() for o in form.find(id="memory").find_all("option")}
    assert options["8Gi"] == "8 GB" and options["64Gi"] == "64 GB"
    sizes = {o["value"]: o.get_text() for o in form.find(id="scratch").find_all("option")}
    assert sizes and all(label == memory_label(size) for size, label in sizes.items())


def test_each_kind_of_accelerator_has_a_one_line_hint() -> None:
    form = _soup(render_form(CONFIG, ML, _availability(), {}))
    for kind in ("gpu", "mig", "fpga"):
        hint = form.find(id=f"hint-{kind}")
        assert hint is not None and hint.get_text() == KIND_HINTS[kind]
        models = form.find(id=f"kind-{kind}").find_all("input", attrs={"name": "accelerator"})
        assert models and all(f"hint-{kind}" in m["aria-describedby"] for m in models)
    assert form.find(id="kind-mig").find(class_="fw-semibold").get_text() == "MIG slices"
    assert "share of one GPU" in KIND_HINTS["mig"] and "All of one card" in KIND_HINTS["gpu"]


def test_every_model_the_form_offers_has_an_image_that_can_use_it() -> None:
    """A choice the form offers can start: each GPU/MIG model with its default image."""
    for user in (ML, CMS, QML):
        form = _soup(render_form(CONFIG, user, _availability(), {}))
        default_cuda = form.find(class_="aiinfn-spawn-form")["data-default-cuda-image"]
        for model in form.find_all("input", attrs={"name": "accelerator"}):
            if model["value"] == "none":
                continue
            image = default_cuda if model["data-cuda"] == "1" else "base"
            choice = validate_options(
                {"image": image, "accelerator": model["value"], "count": 1},
                CONFIG,
                user,
                _availability(),
            )
            assert choice.accelerator is not None


def test_a_gpu_choice_pre_selects_an_image_with_cuda() -> None:
    form = _soup(render_form(CONFIG, ML, _availability(), {"accelerator": "a100-1g-10gb"}))
    assert form.find(id="accelerator-a100-1g-10gb").has_attr("checked")
    assert form.find(id="image-cuda-ml").has_attr("checked")
    form = _soup(render_form(CONFIG, ML, _availability(), {"accelerator": "u50"}))
    assert form.find(id="image-base").has_attr("checked")  # FPGAs need no CUDA


def test_pin_a_server_lists_which_models_each_server_has() -> None:
    models = _availability(free=2)
    models[0] = ModelAvailability(  # the first model only on server-c
        models[0].name,
        models[0].description,
        models[0].kind,
        models[0].memory_gib,
        2,
        2,
        (ServerAvailability("server-c", 2, 2),),
    )
    form = _soup(render_form(CONFIG, ML, models, {}))
    carries = {
        o["value"]: o.get("data-models", "") for o in form.find(id="server").find_all("option")
    }
    assert carries["server-c"].split() == [models[0].name]
    assert models[0].name not in carries["server-a"].split()
    # a pinned server without the chosen model is not pre-filled
    previous = {"image": "cuda-ml", "accelerator": models[1].name, "server": "server-c"}
    form = _soup(render_form(CONFIG, ML, models, previous))
    assert form.find(id="server").find("option", selected=True)["value"] == ""


def test_a_refusal_is_shown_next_to_its_field_in_display_names() -> None:
    with pytest.raises(OptionsError) as exc:
        validate_options(
            {"image": "base", "accelerator": "a100-1g-10gb"}, CONFIG, ML, _availability(2)
        )
    assert exc.value.field == "image"
    assert str(exc.value) == (
        "image 'base' has no CUDA; choose a GPU image to use a100-1g-10gb"
    )  # the REST API's message names values as the API takes them
    shown = exc.value.shown
    assert "Python 3.11 with the scientific stack, no CUDA" in shown
    assert "NVIDIA A100 MIG slice 1g.10gb" in shown and "a100-1g-10gb" not in shown
    form = _soup(render_form(CONFIG, ML, _availability(), {}, exc.value))
    alert = form.find(id="error-image")
    assert alert["role"] == "alert" and alert.get_text() == shown
    assert alert.find_parent("fieldset")["id"] == "aiinfn-images"
    assert form.find(id="aiinfn-images")["aria-describedby"] == "error-image"
    assert "Error:" not in alert.get_text() and "HTTP 400" not in alert.get_text()


@pytest.mark.parametrize(
    ("options", "field", "words"),
    [
        ({"cpu": 64}, "cpu", "up to 16 CPU cores"),
        ({"memory": "1Ti"}, "memory", "up to 64 GB of memory"),
        ({"image": "cuda-ml", "accelerator": "t4", "count": 9}, "count", "1 to 2"),
        ({"image": "cuda-ml", "accelerator": "t4", "server": "server-z"}, "server", "server-z"),
        ({"image": "cuda-ml", "accelerator": "t4", "count": 2}, "accelerator", "No server has 2"),
    ],
)
def test_refusals_name_their_field(options: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(OptionsError) as exc:
        validate_options(options, CONFIG, ML, _availability(free=1))
    assert exc.value.field == field and words in exc.value.shown, exc.value.shown


def test_the_profile_line_says_who_holds_what() -> None:
    from aiinfn_hub.spawner.form_view import profile_line

    image = next(i for i in CONFIG.images if i.name == "cuda-ml")
    model = next(a for a in CONFIG.accelerators if a.name == "a100-1g-10gb")
    alice = UserContext("alice", frozenset({"cms", "cms/analysis"}))
    line = profile_line(CONFIG, alice, image, model, 1, "server-3")
    assert line == "cms · NVIDIA A100 MIG slice 1g.10gb \u00d71 on server-3 · cuda-ml"
    base = next(i for i in CONFIG.images if i.name == "base")
    assert profile_line(CONFIG, alice, base, None, 0, None) == "cms · CPU only · base"


def test_the_profile_line_is_rebuilt_from_stored_options_on_the_node_found() -> None:
    """A server found again by a restarted hub has names in its options, not catalogue
    objects; an image or model that has left the catalogue gives no line (kept as it was)."""
    from aiinfn_hub.spawner.form_view import stored_profile_line

    alice = UserContext("alice", frozenset({"cms"}))
    stored = {"image": "cuda-ml", "accelerator": "a100-1g-10gb", "count": 1}
    line = stored_profile_line(CONFIG, alice, stored, "server-3")
    assert line == "cms · NVIDIA A100 MIG slice 1g.10gb \u00d71 on server-3 · cuda-ml"
    cpu = {"image": "base", "accelerator": "none", "count": 0}
    assert stored_profile_line(CONFIG, alice, cpu, "node-1") == "cms · CPU only on node-1 · base"
    assert stored_profile_line(CONFIG, alice, {**stored, "image": "gone"}, "n") is None
    assert stored_profile_line(CONFIG, alice, {**stored, "accelerator": "h200"}, "n") is None


def test_the_derived_profile_is_accepted_back_and_ignored() -> None:
    """JupyterHub gives the stored options back for a REST start with an empty body."""
    stored = {"image": "base", "accelerator": "none", "profile": "cms · CPU only · base"}
    assert validate_options(stored, CONFIG, CMS, _availability()).accelerator is None


def test_configure_hub_wires_spawner_and_handler() -> None:
    from traitlets.config import Config

    from aiinfn_hub.hub_setup import configure_hub
    from aiinfn_hub.spawner.handlers import AcceleratorsHandler

    c = Config()
    configure_hub(c, "/etc/aiinfn/platform.yaml")
    assert c.JupyterHub.spawner_class == "aiinfn"
    assert c.AIInfnSpawner.platform_config_file == "/etc/aiinfn/platform.yaml"
    handlers = c.JupyterHub.extra_handlers.get_value([("/existing", object)])
    assert handlers == [("/existing", object), (r"/api/aiinfn/accelerators", AcceleratorsHandler)]


def test_a_notebook_may_take_units_that_only_batch_jobs_hold() -> None:
    """server-b: no unit free, two held by batch jobs; server-a: both held by notebooks."""
    models = [
        ModelAvailability(
            a.name,
            a.description,
            a.kind,
            a.memory_gib,
            4,
            0,
            (ServerAvailability("server-a", 2, 0), ServerAvailability("server-b", 2, 0, 2)),
            batch=2,
        )
        for a in CONFIG.accelerators
    ]
    choice = validate_options(
        {"image": "cuda-ml", "accelerator": "t4", "count": 2}, CONFIG, ML, models
    )
    assert (choice.accelerator and choice.accelerator.name, choice.count) == ("t4", 2)
    pinned = {"image": "cuda-ml", "accelerator": "t4", "count": 1, "server": "server-b"}
    assert validate_options(pinned, CONFIG, ML, models).server == "server-b"
    with pytest.raises(OptionsError, match="server server-a has 0 t4 free"):
        validate_options(pinned | {"server": "server-a"}, CONFIG, ML, models)
    # the user's own limits still hold (ML may have 2 units at most)
    with pytest.raises(OptionsError, match="between 1 and 2"):
        validate_options(pinned | {"count": 3, "server": ""}, CONFIG, ML, models)
    html = render_form(CONFIG, ML, models, {})
    assert "0 of 4 free, 2 more held by batch jobs — yours if you start" in html
    assert "server-b (0/2, 2 from batch jobs)" in html


def test_server_names_are_escaped_in_the_counts_and_the_pinned_server_options() -> None:
    odd = 'node<1>&"x"'
    models = [
        ModelAvailability(
            m.name,
            m.description,
            m.kind,
            m.memory_gib,
            m.total,
            m.free,
            (*m.servers, ServerAvailability(odd, 2, 1, 1)),
            batch=1,
        )
        for m in _availability()
    ]
    html = render_form(CONFIG, ML, models, {})
    assert odd not in html
    form = _soup(html)
    label = form.find(id="accelerator-t4").parent.find(class_="aiinfn-servers").get_text()
    assert label.endswith(f"server-b (1/2), {odd} (1/2, 1 from batch jobs)")
    options = [o["value"] for o in form.find(id="server").find_all("option")]
    assert options == ["", odd, "server-a", "server-b"]
    # a pinned server with such a name is pre-selected like any other
    previous = {"image": "cuda-ml", "accelerator": "t4", "server": odd}
    form = _soup(render_form(CONFIG, ML, models, previous))
    assert form.find(id="server").find("option", selected=True)["value"] == odd


def test_a_new_configuration_changes_the_form_at_once() -> None:
    """What a user may choose is kept per configuration: a new version is read afresh."""
    before = _soup(render_form(CONFIG, ML, _availability(), {}))
    assert [o["value"] for o in before.find(id="cpu").find_all("option")] == [
        "1",
        "2",
        "4",
        "8",
        "16",
    ]
    narrower = CONFIG.model_copy(
        update={"resources": CONFIG.resources.model_copy(update={"cpu_choices": [1.0, 2.0]})}
    )
    after = _soup(render_form(narrower, ML, _availability(), {}))
    assert [o["value"] for o in after.find(id="cpu").find_all("option")] == ["1", "2"]
    again = _soup(render_form(CONFIG, ML, _availability(), {}))
    assert [o["value"] for o in again.find(id="cpu").find_all("option")] == [
        "1",
        "2",
        "4",
        "8",
        "16",
    ]
