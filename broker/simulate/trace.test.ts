import { describe, expect, it } from "vitest";
import { generateTrace, TRACE_MIXES } from "./generate.js";
import { detectFormat, formatTrace, parseTrace, TraceError } from "./trace.js";

function errorOf(text: string): TraceError {
  try {
    parseTrace(text);
  } catch (error) {
    if (error instanceof TraceError) return error;
    throw error;
  }
  throw new Error("expected a TraceError");
}

describe("traces", () => {
  it("reads CSV and JSON lines into the same entries, sorted by submit time", () => {
    const csv = [
      "# a comment",
      "id,submit,kind,start,earliest,latest,duration,cpu,memory_gib,disk_gib,priority,preemptible,labels,constraints,group,group_kind,group_hard,group_topology",
      'r1,30,reserved,600,,,3600,2,4,20,5,true,team=a;app=web,"zone in (zone-a,zone-b);shape=m48",web,anti-affinity,true,zone',
      "f1,10,flexible,,60,120,60,0.5,1.5,,,,,,,,,",
    ].join("\n");
    const jsonl = [
      '{"id":"r1","submit":30,"kind":"reserved","start":600,"duration":3600,"cpu":2,"memory_gib":4,"disk_gib":20,"priority":5,"preemptible":true,"labels":{"team":"a","app":"web"},"constraints":["zone in (zone-a,zone-b)","shape=m48"],"group":"web","group_kind":"anti-affinity","group_hard":true,"group_topology":"zone"}',
      "",
      '{"id":"f1","submit":10,"kind":"flexible","earliest":60,"latest":120,"duration":60,"cpu":0.5,"memory_gib":1.5}',
    ].join("\n");
    expect(detectFormat(csv)).toBe("csv");
    expect(detectFormat(jsonl)).toBe("jsonl");
    const fromCsv = parseTrace(csv);
    const fromJson = parseTrace(jsonl);
    expect(fromCsv.map((e) => e.id)).toEqual(["f1", "r1"]);
    const strip = (es: typeof fromCsv) => es.map(({ line: _line, ...rest }) => rest);
    expect(strip(fromCsv)).toEqual(strip(fromJson));
    expect(fromCsv[1]).toMatchObject({
      submitMs: 30_000,
      window: { kind: "reserved", startMs: 600_000, durationMs: 3_600_000 },
      resources: { cpuMillis: 2000, memoryMib: 4096, diskGib: 20, gpus: 0 },
      priority: 5,
      preemptible: true,
      labels: { team: "a", app: "web" },
      constraints: ["zone in (zone-a,zone-b)", "shape=m48"],
      group: { name: "web", kind: "anti-affinity", hard: true, topologyKey: "zone" },
    });
    expect(fromCsv[0]?.resources).toMatchObject({ cpuMillis: 500, memoryMib: 1536 });
  });

  it("names the line and the field of a bad line", () => {
    const header = "submit,kind,duration,cpu,memory_gib";
    const cases: [string, number, RegExp][] = [
      [
        `${header}\n0,immediate,60,1,1\n5,soon,60,1,1`,
        3,
        /kind: must be immediate, reserved or flexible/,
      ],
      [`${header}\n0,immediate,0,1,1`, 2, /duration: must be > 0/],
      [`${header}\n0,immediate,60,-1,1`, 2, /cpu: must be > 0/],
      [`${header}\n0,immediate,60,x,1`, 2, /cpu: expected a number/],
      [`${header}\n0,immediate,60,1`, 2, /4 columns, the header has 5/],
      [`submit,when\n0,1`, 1, /when: unknown column/],
      [
        `submit,kind,start,duration,cpu,memory_gib\n100,reserved,50,60,1,1`,
        2,
        /start: a reservation must start at or after/,
      ],
      ['{"submit":0,"duration":60,"cpu":1,"memory_gib":1}\n{"submit":1,', 2, /not valid JSON/],
      [
        '{"submit":0,"duration":60,"cpu":1,"memory_gib":1,"constraints":["zone=="]}',
        1,
        /constraints:/,
      ],
      ['{"submit":0,"duration":60,"cpu":1}', 1, /memory_gib: is required/],
      [
        '{"submit":0,"duration":60,"cpu":1,"memory_gib":1,"group_hard":true}',
        1,
        /group_hard: needs a group/,
      ],
      [
        '{"id":"x","submit":0,"duration":60,"cpu":1,"memory_gib":1}\n{"id":"x","submit":0,"duration":60,"cpu":1,"memory_gib":1}',
        2,
        /"x" is also on line 1/,
      ],
    ];
    for (const [text, line, rule] of cases) {
      const error = errorOf(text);
      expect(error.line, text).toBe(line);
      expect(error.message, text).toMatch(new RegExp(`^trace line ${line}: `));
      expect(error.message, text).toMatch(rule);
    }
  });

  it("writes generated traces that read back unchanged, the same for the same seed", () => {
    for (const mix of TRACE_MIXES) {
      const trace = generateTrace({ mix, seed: 7, leases: 200, days: 2 });
      expect(trace).toHaveLength(200);
      expect(parseTrace(formatTrace(trace))).toEqual(trace);
      expect(generateTrace({ mix, seed: 7, leases: 200, days: 2 })).toEqual(trace);
      expect(generateTrace({ mix, seed: 8, leases: 200, days: 2 })).not.toEqual(trace);
      expect(trace.every((e) => e.submitMs >= 0 && e.submitMs < 2 * 86_400_000)).toBe(true);
    }
    const kinds = (mix: (typeof TRACE_MIXES)[number]) =>
      generateTrace({ mix, seed: 1, leases: 2000, days: 7 }).filter(
        (e) => e.window.kind === "reserved",
      ).length;
    expect(kinds("reservation-heavy")).toBeGreaterThan(2 * kinds("steady"));
  });
});
