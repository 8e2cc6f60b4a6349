"""The meter point operator's CSV: each bad row refused naming file, line and field."""
import pytest

from scripts._deployment import SpecError, read_meter_csv, write_meter_csv

HEADER = "meter,key,kind,group,active_from,baseline_import_wh,baseline_export_wh\n"
KEY = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
GOOD = f"dsmr:4B384547303034303436333935353037,{KEY},prosumer,north,,6825.5129,2444\n"


def _csv(tmp_path, body: str, header: str = HEADER):
    path = tmp_path / "meters.csv"
    path.write_text(header + body)
    return path


def test_a_good_row_reads_with_registers_in_mwh_and_the_next_period(tmp_path):
    (row,) = read_meter_csv(_csv(tmp_path, GOOD), period_seconds=900, now=900 * 10 + 5)
    assert (row.baseline_import_mwh, row.baseline_export_mwh) == (6_825_512, 2_444_000)  # floor to mWh
    assert row.active_from == 11 and row.kind == "prosumer"
    write_meter_csv(tmp_path / "again.csv", [row])
    assert read_meter_csv(tmp_path / "again.csv", 900) == [row]


@pytest.mark.parametrize("body, message", [
    (GOOD.replace("prosumer", "solar"), "kind 'solar'"),
    (GOOD.replace(KEY, "0x1234"), "is not an address"),
    (GOOD.replace("6825.5129", "-1"), "cannot be negative"),
    (GOOD.replace("6825.5129", "lots"), "baseline_import_wh"),
    (GOOD.replace("dsmr:", "iec:"), "scheme dsmr, sml, sunspec or d0"),
    (GOOD + GOOD, "listed twice"),
    (GOOD.replace(",north,", ",,"), "group is empty"),
    (GOOD.replace("north,,", "north,0,"), "active_from must be a period >= 1"),
    (GOOD.replace("north,,", "north,soon,"), "active_from 'soon' is not a period number"),
])
def test_bad_rows_are_refused_naming_line_and_field(tmp_path, body, message):
    with pytest.raises(SpecError, match=message) as e:
        read_meter_csv(_csv(tmp_path, body), 900)
    assert "meters.csv:" in str(e.value)


def test_a_missing_column_is_named(tmp_path):
    with pytest.raises(SpecError, match="missing column.*baseline_export_wh"):
        read_meter_csv(_csv(tmp_path, "", HEADER.replace(",baseline_export_wh", "")), 900)
