"""``twintap provision --fleet``: four virtual boards (and one port that is not there) from
one CSV, verified against the bench broker and platform; a failure does not stop the rest and
the run ends with a table."""

from __future__ import annotations

import csv
import json

from tests.companion.conftest import twintap

APP = "fleet"


def test_four_virtual_boards_from_one_csv(bench, platform, repl_board, tmp_path):
    rows = []
    for i in range(1, 5):
        b = repl_board(f"f{i}")
        added = bench.add(APP, f"f{i}", replace=True)
        rows.append({"client_id": f"f{i}", "port": str(b.repl), "vboard_dir": "",
                     "token": added.token, "username": added.device.username})
        rows[-1]["board"] = b
    rows.append({"client_id": "ghost", "port": str(tmp_path / "nowhere"), "vboard_dir": "",
                 "token": "x", "username": "y"})
    path = tmp_path / "devices.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, ["client_id", "port", "vboard_dir", "token", "username"],
                           extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    r = twintap("provision", "--fleet", path, "--broker", bench.url, "--app-id", APP,
                "--ca", bench.ca, "--admin-password", "fleet-pw", "--verify", "--timeout", 30,
                "--platform-dir", platform.dir, "--jobs", 4, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr  # one board failed
    table = r.stdout[r.stdout.index("client_id  port"):].splitlines()
    for i in range(1, 5):
        line = next(x for x in table if x.startswith(f"f{i} "))
        assert "  ok  " in line, table
    ghost = next(x for x in table if x.startswith("ghost "))
    assert "FAILED" in ghost and "no such port" in ghost
    assert table[-1] == "4 of 5 boards provisioned, 1 failed"
    assert "[f3]   registration    ok" in r.stdout
    for row in rows[:4]:
        cfg = json.loads((row["board"].flash / "config.json").read_text())
        assert cfg["rpz"]["client_id"] == row["client_id"] and cfg["rpz"]["app_id"] == APP
        assert set(cfg["tap"]["users"]["admin"]) == {"stored", "server", "salt", "it"}
        assert row["token"] not in r.stdout
    salts = {json.loads((row["board"].flash / "config.json").read_text())["tap"]["users"]
             ["admin"]["salt"] for row in rows[:4]}
    assert len(salts) == 4  # each board its own salt
