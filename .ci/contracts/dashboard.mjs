// CI: every query of the Grafana dashboard parses as PromQL with Prometheus's own grammar
// (the one its UI uses). Which metrics the queries name is checked by the Python tests.
import { readFileSync } from "node:fs";
import { parser } from "@prometheus-io/lezer-promql";

const path = process.argv[2];
const dashboard = JSON.parse(readFileSync(path, "utf8"));
const failures = [];
let queries = 0;
for (const panel of dashboard.panels) {
  for (const target of panel.targets ?? []) {
    queries += 1;
    // Grafana fills variables before Prometheus sees a query.
    const expr = target.expr.replaceAll("$org", ".*");
    parser.parse(expr).iterate({
      enter(node) {
        if (node.type.isError) {
          failures.push(`${panel.title}: ${expr} (at ${node.from}: "${expr.slice(node.from, node.from + 20)}")`);
        }
      },
    });
  }
}
if (failures.length > 0 || queries === 0) {
  console.error(failures.length ? failures.join("\n") : "no queries found");
  process.exit(1);
}
console.log(`${path}: ${queries} queries parse as PromQL`);
