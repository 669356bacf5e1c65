#!/usr/bin/env python3
"""Host side: turn a scenario's checks.tsv / figures.tsv (written in the guest) into report.json.
Usage: report.py OUTDIR SCENARIO VM_RC VM_SECONDS HOST_TIMEOUT IMAGE_KEY [PRE_CHECK_NAME PRE_CHECK_DETAIL]
Each check gets "gate": true unless its name matches one of the comma-separated fnmatch patterns in the environment
variable FIGURE_CHECKS (the scenario's `# rig: figures=` header, passed by scripts/rig): such a check is a figure, its
verdict is recorded and printed but does not fail the scenario. guest-finished, emulator and scenario-checks always gate.
Prints the failed checks, one per line 'GATE|FIGURE<TAB>name<TAB>detail', on stdout; exit 0 if every gated check passed.
Usage also: report.py --summary REPORT_JSON  (one line: gated checks passed, figure checks off; a scenario that
passed only on its retry says so first, with the checks its first attempt failed).
Usage also: report.py --retried REPORT_JSON FIRST_REPORT_JSON REASON: records in REPORT_JSON (the retry's) that a first
attempt ran and failed (its failed gated checks and figure checks, its log dir, why it was retried); "status" becomes
"passed on retry" or "failed twice". A retry never hides the first attempt: the summary line and `test` show it."""
import fnmatch
import json
import os
import sys

ALWAYS_GATE = ("guest-finished", "emulator", "scenario-checks", "bluebridge-binary")


def figure_patterns():
    return [p.strip() for p in os.environ.get("FIGURE_CHECKS", "").split(",") if p.strip()]


def gates(name, patterns):
    return name in ALWAYS_GATE or not any(fnmatch.fnmatchcase(name, p) for p in patterns)


def summary(path):
    r = json.load(open(path))
    g = [c for c in r["checks"] if c.get("gate", True)]
    f = [c for c in r["checks"] if not c.get("gate", True)]
    line = ""
    first = r.get("first_attempt")
    if first:
        line = "%s; first attempt (%s) failed: %s; retry: " % (
            r.get("status", "retried"), first.get("reason", "retry"),
            ",".join(first.get("failed", [])) or "no check recorded")
    line += "gated %d/%d passed" % (sum(c["pass"] for c in g), len(g))
    bad = [c["name"] for c in g if not c["pass"]]
    if bad:
        line += " (failed: %s)" % ",".join(bad)
    if f:
        off = [c["name"] for c in f if not c["pass"]]
        line += "; figure checks %d/%d within bound%s" % (len(f) - len(off), len(f),
                                                         " (off: %s)" % ",".join(off) if off else "")
    return line


def num(v):
    try:
        f = float(v)
        return int(f) if f.is_integer() and '.' not in v else f
    except ValueError:
        return v


def guest_panic(console):
    try:
        for line in open(console, encoding="utf-8", errors="replace"):
            for word in ("Kernel panic", "Oops:", "BUG:"):
                if word in line:
                    return line[line.index(word):].strip()[:200]
    except OSError:
        pass
    return None


def retried(path, first_path, reason):
    """Marks the retry's report with its failed first attempt; returns the retry's verdict as an exit status."""
    r = json.load(open(path))
    try:
        f = json.load(open(first_path))
    except (OSError, ValueError) as e:
        f = {"pass": False, "checks": [{"name": "report", "pass": False, "gate": True,
                                        "detail": "first attempt's report unreadable: %s" % e}]}
    bad = [c for c in f.get("checks", []) if not c["pass"] and c.get("gate", True)]
    off = [c for c in f.get("checks", []) if not c["pass"] and not c.get("gate", True)]
    r["attempts"] = 2
    r["status"] = "passed on retry" if r["pass"] else "failed twice"
    r["first_attempt"] = {"pass": f.get("pass", False), "reason": reason,
                          "failed": [c["name"] for c in bad],
                          "failed_checks": [{"name": c["name"], "detail": c.get("detail", "")} for c in bad],
                          "figure_checks_off": [c["name"] for c in off],
                          "log_dir": os.path.dirname(os.path.abspath(first_path)),
                          "figures": f.get("figures", {})}
    with open(path, "w") as out:
        json.dump(r, out, indent=2)
        out.write("\n")
    for c in bad:
        print("%s\t%s" % (c["name"], c.get("detail", "")))
    return 0 if r["pass"] else 1


def main():
    if sys.argv[1:2] == ["--summary"]:
        print(summary(sys.argv[2]))
        return 0
    if sys.argv[1:2] == ["--retried"]:
        return retried(sys.argv[2], sys.argv[3], sys.argv[4])
    out, scenario, vm_rc, vm_s, host_tmo, image = sys.argv[1:7]
    pre = sys.argv[7:9]
    checks, figures = [], {}
    if pre:  # the host refused to boot (e.g. no bluebridge binary)
        checks.append({"name": pre[0], "pass": False, "detail": pre[1]})
    else:
        done = os.path.exists(os.path.join(out, "guest-done"))
        vm_rc = int(vm_rc)
        if vm_rc == 124 or vm_rc == 137:
            detail = "VM killed by the host timeout after %s s (see console.log)" % host_tmo
        elif not done:
            detail = "guest did not finish (qemu rc=%d after %s s; see console.log, runner.log)" % (vm_rc, vm_s)
            panic = guest_panic(os.path.join(out, "console.log"))
            if panic:
                detail = "guest kernel died: %s; " % panic + detail
        else:
            detail = "guest finished; VM ran %s s" % vm_s
        checks.append({"name": "guest-finished", "pass": done and vm_rc not in (124, 137), "detail": detail})
        path = os.path.join(out, "checks.tsv")
        if os.path.exists(path):
            for line in open(path, encoding="utf-8", errors="replace"):
                parts = line.rstrip("\n").split("\t")
                if len(parts) < 2 or not parts[0]:
                    continue
                checks.append({"name": parts[0], "pass": parts[1] == "PASS",
                               "detail": parts[2] if len(parts) > 2 else ""})
        if len(checks) == 1:
            checks.append({"name": "scenario-checks", "pass": False, "detail": "the scenario recorded no check"})
        path = os.path.join(out, "figures.tsv")
        if os.path.exists(path):
            for line in open(path, encoding="utf-8", errors="replace"):
                parts = line.rstrip("\n").split("\t", 1)
                if len(parts) == 2 and parts[0]:
                    figures[parts[0]] = num(parts[1])
    pats = figure_patterns()
    for c in checks:
        c["gate"] = gates(c["name"], pats)
    figures["vm_s"] = num(vm_s)
    figures["boots"] = int(os.environ.get("BOOTS", "1"))
    passed = all(c["pass"] for c in checks if c["gate"])
    report = {"scenario": scenario, "pass": passed, "status": "passed" if passed else "failed", "attempts": 1,
              "checks": checks, "figures": figures,
              "figure_checks": pats, "figure_checks_off": [c["name"] for c in checks if not c["gate"] and not c["pass"]],
              "log_dir": os.path.abspath(out), "image": image}
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    for c in checks:
        if not c["pass"]:
            print("%s\t%s\t%s" % ("GATE" if c["gate"] else "FIGURE", c["name"], c["detail"]))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
