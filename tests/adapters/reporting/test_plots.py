"""Plots of a projection database (adapters/reporting/plot_data.py, plots.py): the data
behind each plot, checked against figures computed by hand from the scripted log of
``tests.support.projection`` (times are seconds after T0 = 2026-01-01T08:00:00Z), and the
PNG files themselves."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pytest
from matplotlib import image as mimage

from omniroute.adapters.reporting import (
    PLOT_FILES,
    Projector,
    connect_readonly,
    write_plots,
)
from omniroute.adapters.reporting.plot_data import (
    MIN_MEASURED,
    ServiceLevelSeries,
    occupancy_data,
    queue_depth_data,
    service_level_data,
    waits_data,
)
from omniroute.adapters.reporting.plots import (
    draw_occupancy,
    draw_queue_depth,
    draw_service_level,
    draw_waits,
)
from tests.support.projection import at

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("empty") / "empty.duckdb"
    with Projector(path):
        pass
    return path


# --- service level ---------------------------------------------------------------------------


def test_service_level_per_class_in_the_first_interval(con: duckdb.DuckDBPyConnection) -> None:
    data = service_level_data(con)
    # every contact arrives in 08:00-08:15. Measured: voice c2 (abandoned after 30 s),
    # c4 (callback, 25 s > 20 s), c6 (5 s), c3 a short abandon left out; chat c1 (12 s),
    # c5 (30 s of 60 s); messaging c9, c7 and c8 (Maria's WhatsApp joining c7, served at
    # once); email c10 (22 h 46 m of 24 h)
    assert data.interval_s == 900
    assert list(data.starts) == [np.datetime64(at(0), "ms")]
    assert data.classes == ("voice", "chat", "messaging", "email")
    assert data.contacts[:, 0].tolist() == [4, 2, 3, 1]
    assert data.measured[:, 0].tolist() == [3, 2, 3, 1]
    assert data.met[:, 0].tolist() == [1, 2, 3, 1]
    assert data.service_level[:, 0] == pytest.approx([1 / 3, 1, 1, 1])
    assert data.overall.tolist() == [7 / 9]


def test_an_interval_with_few_contacts_is_marked_not_drawn_at_100_percent() -> None:
    # three intervals: 10 measured (6 met), 2 measured (both met), 8 measured (4 met)
    starts = np.datetime64(at(0), "ms") + np.arange(3) * np.timedelta64(900, "s")
    measured = np.array([[10, 2, 8]])
    data = ServiceLevelSeries(900, starts, ("voice",), measured, measured,
                              np.array([[6, 2, 4]]))  # fmt: skip
    assert MIN_MEASURED == 5
    assert data.overall.tolist() == [0.6, 1.0, 0.5]
    shown = data.overall_shown()
    assert shown[0] == 0.6 and math.isnan(shown[1]) and shown[2] == 0.5
    assert data.overall_shown(min_measured=2).tolist() == [0.6, 1.0, 0.5]
    fig = draw_service_level(data)
    top = fig.axes[0]
    line = next(ln for ln in top.get_lines() if ln.get_label().startswith("all channels"))
    y = np.asarray(line.get_ydata(), dtype=float)
    assert y[0] == 0.6 and math.isnan(y[1]) and y[2] == 0.5  # the line does not jump to 100 %
    hollow = [ln for ln in top.get_lines() if ln.get_markerfacecolor() == "none"
              and len(ln.get_xdata()) == 1]  # fmt: skip
    assert [float(ln.get_ydata()[0]) for ln in hollow] == [1.0, 1.0]  # voice, all channels
    assert any("under 5 measured" in t.get_text() for t in top.get_legend().get_texts())


def test_service_level_per_five_minutes(con: duckdb.DuckDBPyConnection) -> None:
    data = service_level_data(con, interval_s=300)
    # 08:00 c1 met, c2 and c4 not, c5 met; 08:05 c6, c9 met; 08:10 c7, c8, c10 met
    assert list(data.starts) == [np.datetime64(at(s), "ms") for s in (0, 300, 600)]
    assert data.measured.sum(axis=0).tolist() == [4, 2, 3]
    assert data.overall.tolist() == [0.5, 1.0, 1.0]
    voice = data.classes.index("voice")
    assert data.measured[voice].tolist() == [2, 1, 0]
    assert math.isnan(data.service_level[voice, 2])  # nothing measured: no value, not 0


# --- queue depth -----------------------------------------------------------------------------


def test_queue_depth_every_five_seconds(con: duckdb.DuckDBPyConnection) -> None:
    data = queue_depth_data(con, step_s=5)
    assert data.step_s == 5
    assert data.times[0] == np.datetime64(at(10), "ms")  # c1's first contact
    assert data.channels == ("voice", "webchat", "whatsapp", "messenger", "email")

    def waiting(seconds: int) -> dict[str, int]:
        i = (seconds - 10) // 5
        assert data.times[i] == np.datetime64(at(seconds), "ms")
        return {c: int(n) for c, n in zip(data.channels, data.waiting[:, i], strict=True) if n}

    assert waiting(10) == {"webchat": 1}  # c1 offered at 10 s, accepted at 22 s
    assert waiting(20) == {"webchat": 1}
    assert waiting(25) == {}
    assert waiting(35) == {"voice": 2}  # c2 (30-60 s) and c3 (35-38 s)
    assert waiting(40) == {"voice": 1}
    assert waiting(60) == {}  # c2 hung up at 60 s: waiting is start <= t < end
    assert waiting(75) == {"voice": 1}  # c4: queued at 70 s, a callback at 80 s, answered 95 s
    assert waiting(90) == {"voice": 1}
    assert waiting(95) == {}
    assert waiting(210) == {}  # c5 is with the bot, not in a queue
    assert waiting(225) == {"webchat": 1}  # handed off at 220 s, answered at 230 s
    assert waiting(425) == {"voice": 1}  # c6's transfer to bob: 420-428 s
    assert waiting(440) == {"whatsapp": 1}
    assert waiting(800) == {"email": 1}  # c10 waits for eve until the next morning
    assert waiting(82_795) == {"email": 1}
    assert waiting(82_800) == {}
    assert data.total.max() == 2
    assert len(data.times) == (82_800 - 10) // 5 + 1


def test_queue_depth_default_step_is_a_minute(con: duckdb.DuckDBPyConnection) -> None:
    data = queue_depth_data(con)
    assert data.step_s == 60
    assert data.times[0] == np.datetime64(at(0), "ms")
    i = data.channels.index("email")
    assert data.waiting[i, 14] == 1  # 08:14: c10 arrived at 08:13:20
    assert data.total[1] == 0  # 08:01: c2 hung up at 08:01:00 exactly
    with pytest.raises(ValueError):
        queue_depth_data(con, step_s=0)


# --- waits by channel ------------------------------------------------------------------------


def test_waits_by_channel(con: duckdb.DuckDBPyConnection) -> None:
    data = {c.channel: c for c in waits_data(con)}
    assert list(data) == ["voice", "webchat", "whatsapp", "messenger", "email"]
    voice = data["voice"]
    assert voice.waits_s.tolist() == [5.0, 25.0]  # c6, c4 answered; c2, c3 abandoned
    assert (voice.contacts, voice.measured, voice.met, voice.abandoned) == (4, 3, 1, 1)
    assert (voice.target_lo_s, voice.target_hi_s) == (20.0, 20.0)
    assert voice.service_level == pytest.approx(1 / 3)
    # the curve's height at the target is the service level; abandons keep it under 100 %
    assert voice.share_within(20.0) == pytest.approx(1 / 3)
    assert voice.share_within(np.array([4.9, 5.0, 1e6])).tolist() == pytest.approx(
        [0, 1 / 3, 2 / 3]
    )
    webchat = data["webchat"]
    assert webchat.waits_s.tolist() == [12.0, 30.0]  # c1 (sales, 30 s), c5 (support, 60 s)
    assert (webchat.target_lo_s, webchat.target_hi_s) == (30.0, 60.0)
    assert webchat.service_level == 1.0
    email = data["email"]
    assert email.waits_s.tolist() == [82_000.0]
    assert email.target_lo_s == 86_400.0


# --- occupancy -------------------------------------------------------------------------------


def test_occupancy_per_agent_and_interval(con: duckdb.DuckDBPyConnection) -> None:
    data = occupancy_data(con)
    assert data.labels == ("ann", "bob", "eve")  # humans who logged in, by id
    assert (data.agents, data.agents_per_row, data.interval_s) == (3, 1, 900)
    assert data.starts[0] == np.datetime64(at(0), "ms")
    assert len(data.starts) == 100  # 08:00 to 08:45 the next day (the projection's clock)
    # ann in 08:00-08:15: busy 22-155 s (c1, c4 and their wrap-ups), 230-305 (c5),
    # 405-420 (c6), 445-465 (c9), 610-705 (c7): 338 s of 900 s logged in
    assert (data.busy_s[0, 0], data.staffed_s[0, 0]) == (338.0, 900.0)
    assert data.occupancy[0, 0] == pytest.approx(338 / 900)
    assert data.occupancy[0, 1] == 0.0  # logged in, idle
    # bob: logged in 410-510 s, busy with c6 428-505 s
    assert data.occupancy[1, 0] == pytest.approx(0.77)
    assert math.isnan(data.occupancy[1, 1])  # not logged in: no value, not 0
    # eve: logged in from 07:00 the next day, busy 100 s with c10
    col = 82_800 // 900  # 07:00 the next day
    assert math.isnan(data.occupancy[2, 0])
    assert data.occupancy[2, col] == pytest.approx(100 / 900)


def test_occupancy_rows_sum_consecutive_agents(con: duckdb.DuckDBPyConnection) -> None:
    data = occupancy_data(con, max_rows=2)
    assert data.labels == ("ann-bob", "eve")
    assert (data.agents, data.agents_per_row) == (3, 2)
    assert (data.busy_s[0, 0], data.staffed_s[0, 0]) == (338.0 + 77.0, 900.0 + 100.0)
    assert data.occupancy[0, 0] == pytest.approx(0.415)
    bots = occupancy_data(con, kind="bot")
    assert bots.labels == ("bot",)
    assert bots.busy_s[0, 0] == 20.0  # c5, 200-220 s


def test_occupancy_aggregates_ten_thousand_agents_into_at_most_200_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "many.duckdb"
    with Projector(path):
        pass
    con = duckdb.connect(str(path))
    # 10,000 agents logged in 08:00-09:00; agent i is busy i % 10 minutes of its first hour
    con.execute(
        "UPDATE _projection_state SET as_of_ms = epoch_ms(TIMESTAMP '2026-01-01 09:00:00');"
        "INSERT INTO agents SELECT 't', printf('a%05d', i), 'human', NULL, NULL, '{}', "
        "TIMESTAMP '2026-01-01 08:00:00', NULL FROM range(10000) r(i);"
        "INSERT INTO agent_states SELECT 't', printf('a%05d', i), 'human', 'available', "
        "TIMESTAMP '2026-01-01 08:00:00', TIMESTAMP '2026-01-01 09:00:00', 3600 "
        "FROM range(10000) r(i);"
        "INSERT INTO segments SELECT 't', printf('c%05d', i), 1, 'agent', "
        "TIMESTAMP '2026-01-01 08:00:00', TIMESTAMP '2026-01-01 08:00:00' + to_minutes(i % 10),"
        " 60 * (i % 10), printf('a%05d', i), 'voice', 'voice', 'q', 'ended' "
        "FROM range(10000) r(i) WHERE i % 10 > 0"
    )
    con.close()
    with connect_readonly(path) as ro:
        data = occupancy_data(ro)
    assert (data.agents, data.agents_per_row, len(data.labels)) == (10_000, 50, 200)
    assert data.labels[0] == "a00000-a00049"
    assert data.labels[-1] == "a09950-a09999"
    # 50 agents per row, 5 of each busy 0..9 minutes: 5 * 45 min of 50 h logged in
    assert data.staffed_s[:, :4].sum(axis=1) == pytest.approx([50 * 3600.0] * 200)
    assert data.busy_s.sum(axis=1) == pytest.approx([5 * 45 * 60.0] * 200)
    assert data.occupancy[0, 0] == pytest.approx(5 * 45 * 60 / (50 * 900))


# --- the PNG files ---------------------------------------------------------------------------


def _check_png(path: Path, min_width: int = 600, min_height: int = 300) -> tuple[int, int]:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = mimage.imread(path)
    height, width = pixels.shape[:2]
    assert width >= min_width and height >= min_height
    assert pixels.shape[2] in (3, 4)
    assert float(np.std(pixels[..., :3])) > 0.01  # something is drawn
    return width, height


@pytest.fixture(scope="module")
def written(scripted_db: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_plots(
        scripted_db, tmp_path_factory.mktemp("png") / "out", goal=0.8, title="scripted"
    )


def test_write_plots_writes_four_readable_pngs(written: list[Path]) -> None:
    assert [p.name for p in written] == list(PLOT_FILES)
    assert all(p.parent.name == "out" for p in written)  # the directory is created
    sizes = {p.name: _check_png(p) for p in written}
    assert sizes["service_level.png"] == (1200, 750)
    assert sizes["queue_depth.png"] == (1200, 600)
    assert sizes["waits_by_channel.png"] == (1610, 740)  # 5 channels: 4 + 1 panels
    assert sizes["occupancy.png"][0] == 1200


def test_plots_are_deterministic(scripted_db: Path, written: list[Path], tmp_path: Path) -> None:
    again = write_plots(scripted_db, tmp_path, goal=0.8, title="scripted")
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in written]


def test_an_empty_database_gives_no_data_figures(empty_db: Path, tmp_path: Path) -> None:
    with connect_readonly(empty_db) as con:
        assert service_level_data(con).classes == ()
        assert queue_depth_data(con).channels == ()
        assert waits_data(con) == []
        assert occupancy_data(con).labels == ()
    for path in write_plots(empty_db, tmp_path):
        _check_png(path, min_width=400, min_height=200)


def test_titles_carry_the_prefix_and_the_goal(con: duckdb.DuckDBPyConnection) -> None:
    figures = [
        draw_service_level(service_level_data(con), goal=0.9, title="policy B"),
        draw_queue_depth(queue_depth_data(con), title="policy B"),
        draw_waits(waits_data(con), goal=0.9, title="policy B"),
        draw_occupancy(occupancy_data(con), title="policy B"),
    ]
    titles = [f.get_suptitle() for f in figures]
    assert all(t.startswith("policy B: ") for t in titles), titles
    assert "per 15 min interval" in titles[0]
    legend = figures[0].axes[0].get_legend()
    assert legend is not None
    assert "goal 90%" in [t.get_text() for t in legend.get_texts()]


def test_write_plots_refuses_a_goal_that_is_not_a_share(scripted_db: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="goal"):
        write_plots(scripted_db, tmp_path, goal=80)
