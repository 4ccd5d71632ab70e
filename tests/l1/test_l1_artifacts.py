"""The committed artifacts are what solcjs makes of the sources; Solidity errors map 1:1 to Python."""

from __future__ import annotations

from ha_sequencer.l1 import errors as E
from ha_sequencer.l1.build import ARTIFACTS_DIR, compile_sources, load_artifact, render


def test_artifacts_match_sources() -> None:
    fresh = compile_sources()
    assert set(fresh) == {p.stem for p in ARTIFACTS_DIR.glob("*.json")}
    for name, artifact in fresh.items():
        committed = (ARTIFACTS_DIR / f"{name}.json").read_text()
        assert render(artifact) == committed, f"{name}.json is stale: run `ha-sequencer l1 build`"


def test_every_solidity_error_has_a_python_exception() -> None:
    abi_errors = {
        i["name"]: tuple(x["name"] for x in i["inputs"])
        for i in load_artifact()["abi"]
        if i["type"] == "error"
    }
    assert set(abi_errors) == set(E.ERRORS_BY_NAME)
    for name, fields in abi_errors.items():
        assert E.ERRORS_BY_NAME[name].fields == fields, name


def test_error_message_names_fields() -> None:
    exc = E.SlotAlreadyInChain(7, 7)
    assert str(exc) == "Rollup reverted: Rollup__SlotAlreadyInChain(last_slot=7, slot=7)"
    assert isinstance(exc, E.RollupError) and exc.exit_code == 1
