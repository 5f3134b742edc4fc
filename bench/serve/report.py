"""Results bookkeeping for bench/serve/run.sh (stdlib only).

    python report.py row ROWS.jsonl KEY=VALUE... --wrk WRK_OUT --rss RSS_JSON
        appends one result row: the KEY=VALUE labels, wrk's WRK_JSON line
        (printed by post.lua) and what rss_sampler.py measured
    python report.py render ROWS.jsonl META.json OUT.json
        prints the Markdown table and writes OUT.json (meta + rows)
"""

import json
import sys


def wrk_json(path):
    with open(path) as f:
        for line in f:
            if line.startswith("WRK_JSON "):
                return json.loads(line[len("WRK_JSON "):])
    sys.exit(f"{path}: wrk printed no WRK_JSON line (see the file)")


def row(argv):
    rows_path, rest = argv[0], argv[1:]
    out, i = {}, 0
    while i < len(rest):
        a = rest[i]
        if a == "--wrk":
            out["wrk"] = wrk_json(rest[i + 1])
            i += 2
        elif a == "--rss":
            with open(rest[i + 1]) as f:
                out["sampler"] = json.loads(f.read() or "{}")
            i += 2
        else:
            k, v = a.split("=", 1)
            out[k] = int(v) if v.isdigit() else v
            i += 1
    with open(rows_path, "a") as f:
        f.write(json.dumps(out) + "\n")


def render(argv):
    rows_path, meta_path, out_path = argv
    with open(rows_path) as f:
        rows = [json.loads(l) for l in f if l.strip()]
    with open(meta_path) as f:
        meta = json.load(f)
    print("| server | endpoint | clients | OK responses/s | p50 ms | p99 ms | peak RSS MiB | errors | server CPU ms/req |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        w, m = r["wrk"], r.get("sampler", {})
        errors = w["non2xx"] + w["connect_errors"] + w["read_errors"] + w["write_errors"] + w["timeouts"]
        r["errors"] = errors
        # Only successful answers count: an error answered fast is not
        # throughput.
        r["ok_rps"] = (w["requests"] - w["non2xx"]) / w["duration_s"] if w["duration_s"] else 0
        rss = m.get("peak_rss_kib")
        rss = f"{rss / 1024:.0f}" if rss else "?"
        lat = w["latency_us"]
        cpu = m.get("server_cpu_s")
        cpu = f"{cpu * 1000 / w['requests']:.2f}" if cpu is not None and w["requests"] else "?"
        print(
            f"| {r['server']} | {r['endpoint']} | {r['clients']} | {r['ok_rps']:.0f} | "
            f"{lat['p50'] / 1000:.2f} | {lat['p99'] / 1000:.2f} | {rss} | {errors} | {cpu} |"
        )
    with open(out_path, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    {"row": row, "render": render}[sys.argv[1]](sys.argv[2:])
