#!/usr/bin/env python3
"""Writes Elastic's production EQL rules as detection-rule TOML files, for the benches and tests.

    python3 tests/data/production/generate.py      (from the repository root; rewrites both dirs)

Input: tests/data/rules/eql_production_queries.jsonl (the 1,024 production `type = "eql"` rules
of elastic/detection-rules, Elastic License v2) and tests/data/rules/cloud_defend_rules_index.tsv.
Output, under tests/data/production/, one file per rule at its path in the detection-rules repo:
  cloud_defend/  the 66 rules whose index patterns or query target Defend for Containers
  other/         the other 955
Both together are the 1,021 runnable rules; the 3 `sample` queries are left out (streaming has no
`sample`). Each file is written by tests/data/rules/make_production_rules.py's `rule_file`, as the
rule-corpus tests write them; this script only splits them.
"""
import json
import pathlib
import shutil
import sys

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE.parent / "rules"
sys.path.insert(0, str(DATA))
from make_production_rules import is_sample, rule_file  # noqa: E402  (one writer of rule files)


def main():
    rows = [json.loads(line) for line in (DATA / "eql_production_queries.jsonl").open(encoding="utf-8")]
    with (DATA / "cloud_defend_rules_index.tsv").open(encoding="utf-8") as f:
        cloud_defend = {line.split("\t")[0] for line in list(f)[1:]}
    for d in ("cloud_defend", "other"):
        shutil.rmtree(HERE / d, ignore_errors=True)
    counts = {"cloud_defend": 0, "other": 0}
    for r in rows:
        if is_sample(r["query"]):
            continue
        targets_d4c = r["path"] in cloud_defend or "cloud_defend" in r["query"] or any(
            "cloud_defend" in p for p in r["index"] or []
        )
        group = "cloud_defend" if targets_d4c else "other"
        counts[group] += 1
        rel = pathlib.Path(r["path"]).relative_to("rules") if r["path"].startswith("rules/") else pathlib.Path(r["path"])
        out = HERE / group / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(rule_file(r), encoding="utf-8", newline="\n")
    print(f"cloud_defend: {counts['cloud_defend']} rules, other: {counts['other']} rules")


if __name__ == "__main__":
    main()
