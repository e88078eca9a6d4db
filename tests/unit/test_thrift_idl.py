"""The Thrift IDL is usable from any language: no reserved names, and every target generates.

Internal services calling us over Thrift are often not Python. The Apache Thrift compiler
refuses a name that is a keyword of any of its targets (``package``, ``end``, ...), and
thriftpy2 refuses the same list when it loads an IDL.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import baseplate.thrift
import pytest
import thriftpy2

import galaxy_express.thrift

IDL = Path(galaxy_express.thrift.__file__).parent / "galaxy_express.thrift"
BASEPLATE_IDL_DIR = Path(baseplate.thrift.__file__).parent

# The Apache Thrift compiler's reserved words (compiler/cpp/src/thrift/thriftl.ll, listed in
# doc/specs/idl.md "Reserved keywords"); any of them in an IDL stops `thrift --gen`.
APACHE_THRIFT_RESERVED = frozenset(
    """
    BEGIN END __CLASS__ __DIR__ __FILE__ __FUNCTION__ __LINE__ __METHOD__ __NAMESPACE__
    abstract alias and args as assert begin break case catch class clone continue declare
    def default del delete do dynamic elif else elseif elsif end enddeclare endfor
    endforeach endif endswitch endwhile ensure except exec finally float for foreach from
    function global goto if implements import in inline instanceof interface is lambda
    module native new next nil not or package pass public print private protected raise
    redo rescue retry register return self sizeof static super switch synchronized then
    this throw transient try undef unless unsigned until use var virtual volatile when
    while with xor yield
    """.split()  # noqa: SIM905 (a list literal of 100 quoted words would hide a missing one)
)
# Methods every generated Python struct has: a field of that name would replace them.
GENERATED_STRUCT_METHODS = frozenset({"read", "write", "validate"})

# What every target must generate, with the generator's name for it.
TARGETS = ("py", "java", "go", "rb", "js:node", "cpp", "netstd", "rs")


@pytest.fixture(scope="module")
def idl() -> Any:
    """The IDL loaded by thriftpy2 (its loader refuses reserved names by itself)."""
    return thriftpy2.load(
        str(IDL), module_name="galaxy_express_thrift", include_dirs=[str(BASEPLATE_IDL_DIR)]
    )


def _own_names(idl: Any) -> Iterator[tuple[str, str]]:
    """(where, name) for every struct, field, enum value, method and argument of our IDL."""
    meta = idl.__thrift_meta__
    for struct in [*meta["structs"], *meta["exceptions"], *meta["unions"]]:
        yield "struct", struct.__name__
        for _ttype, field, *_rest in struct.thrift_spec.values():
            yield f"field of {struct.__name__}", field
    for enum in meta["enums"]:
        yield "enum", enum.__name__
        for value in enum._NAMES_TO_VALUES:
            yield f"value of {enum.__name__}", value
    for service in meta["services"]:
        yield "service", service.__name__
        for method in service.thrift_services:
            yield f"method of {service.__name__}", method
            arguments = getattr(service, f"{method}_args").thrift_spec.values()
            for _ttype, argument, *_rest in arguments:
                yield f"argument of {method}", argument


def test_thriftpy2_loads_the_idl(idl: Any) -> None:
    (service,) = idl.__thrift_meta__["services"]
    assert "send_package" in service.thrift_services
    assert "is_healthy" in service.thrift_services, "the service extends BaseplateServiceV2"


def test_no_name_is_reserved_by_any_thrift_target(idl: Any) -> None:
    names = list(_own_names(idl))
    assert len(names) > 100, "the walk reached fields, values and arguments"
    forbidden = APACHE_THRIFT_RESERVED | GENERATED_STRUCT_METHODS
    assert [(where, name) for where, name in names if name in forbidden] == []


def test_renamed_fields_keep_their_ids(idl: Any) -> None:
    """Ids, not names, travel on the wire: clients built from the old IDL still decode."""

    def fields(struct: Any) -> dict[int, str]:
        return {field_id: spec[1] for field_id, spec in struct.thrift_spec.items()}

    assert fields(idl.SendPackageResponse)[1] == "sent_package"
    assert {2: "window_start", 3: "window_end"}.items() <= fields(idl.TaskReport).items()
    assert {2: "window_start", 3: "window_end"}.items() <= fields(idl.TaskReportRequest).items()


@pytest.mark.skipif(
    shutil.which("thrift") is None,
    reason="no Apache Thrift compiler on PATH (apt-get install thrift-compiler)",
)
@pytest.mark.parametrize("target", TARGETS)
def test_every_target_generates(target: str, tmp_path: Path) -> None:
    done = subprocess.run(
        ["thrift", "--gen", target, "-I", str(BASEPLATE_IDL_DIR), "-out", str(tmp_path), str(IDL)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert any(tmp_path.rglob("*")), f"thrift --gen {target} wrote nothing"
