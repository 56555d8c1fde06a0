package resp

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIORedis runs a Node.js script with ioredis 5 against a three-region
// cluster: pipelines, MULTI/EXEC with WATCH from two regions at once,
// a job queue with BLPOP, a leaderboard, pub/sub across regions. It is
// skipped when node or npm is missing, or when npm cannot install ioredis
// (no network); the package is kept in the user's cache directory.
func TestIORedis(t *testing.T) {
	nodeBin, err1 := exec.LookPath("node")
	npm, err2 := exec.LookPath("npm")
	if err1 != nil || err2 != nil {
		t.Skip("node or npm is not installed")
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "meridian-tests", "ioredis5")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ioredis")); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, npm, "install", "--prefix", dir, "--no-audit", "--no-fund", "--loglevel=error", "ioredis@5").CombinedOutput()
		if err != nil {
			t.Skipf("npm could not install ioredis (offline?): %v\n%s", err, out)
		}
	}
	e := newEnv(t)
	script := filepath.Join(t.TempDir(), "script.js")
	if err := os.WriteFile(script, []byte(ioredisScript), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, script)
	cmd.Env = append(os.Environ(),
		"NODE_PATH="+filepath.Join(dir, "node_modules"),
		"EAST="+e.servers[0].Addr(), "WEST="+e.servers[1].Addr(), "ASIA="+e.servers[2].Addr())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ioredis script: ok") {
		t.Fatalf("ioredis script: %v\n%s", err, out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
}

const ioredisScript = `
const Redis = require("ioredis");
const addr = (s) => { const [host, port] = s.split(":"); return { host, port: Number(port), maxRetriesPerRequest: 1 }; };
const east = new Redis(addr(process.env.EAST));
const west = new Redis(addr(process.env.WEST));
const asia = new Redis(addr(process.env.ASIA));
const assert = (cond, what) => { if (!cond) { throw new Error("failed: " + what); } };

async function main() {
  // Pipelines.
  const res = await east.pipeline()
    .set("{u1}:name", "ann").incr("{u1}:visits").hset("{u1}:prefs", "theme", "dark").rpush("io:log", "a", "b").get("{u1}:name")
    .exec();
  assert(res.length === 5 && res[4][1] === "ann" && res[1][1] === 1, "pipeline " + JSON.stringify(res));
  assert((await west.hget("{u1}:prefs", "theme")) === "dark", "HGET in another region");

  // MULTI/EXEC with WATCH: an optimistic counter from two regions.
  const key = "{acct}:io";
  await east.set(key, 0);
  let retries = 0;
  const bump = async (c) => {
    for (;;) {
      await c.watch(key);
      const n = Number(await c.get(key));
      const r = await c.multi().set(key, n + 1).incr("{acct}:ioops").exec();
      if (r !== null) return;
      retries++;
    }
  };
  const eastWatch = new Redis(addr(process.env.EAST));
  const westWatch = new Redis(addr(process.env.WEST));
  // Each connection runs one transaction at a time (WATCH belongs to a
  // connection), both connections at once.
  const loop = async (c) => { for (let i = 0; i < 25; i++) { await bump(c); } };
  await Promise.all([loop(eastWatch), loop(westWatch)]);
  assert(Number(await asia.get(key)) === 50, "balance after optimistic increments: " + (await asia.get(key)));

  // A job queue with blocking pops: consumer in ap-southeast, producer in us-east.
  const consumer = new Redis(addr(process.env.ASIA));
  const popped = [];
  const consume = (async () => { for (let i = 0; i < 3; i++) { const [, v] = await consumer.blpop("io:jobs", 10); popped.push(v); } })();
  for (let i = 0; i < 3; i++) { await east.rpush("io:jobs", "job" + i); }
  await consume;
  assert(popped.join(",") === "job0,job1,job2", "jobs " + popped);
  assert((await west.blpop("io:jobs", 0.1)) === null, "BLPOP of an empty queue");

  // A leaderboard.
  await east.zadd("io:board", 10, "ann", 20, "bob", 15, "cy");
  assert(Number(await west.zincrby("io:board", 12.5, "ann")) === 22.5, "ZINCRBY");
  const top = await asia.zrevrange("io:board", 0, 1, "WITHSCORES");
  assert(top.join(",") === "ann,22.5,bob,20", "top two " + top);
  assert((await asia.zrank("io:board", "cy")) === 0, "ZRANK");

  // Pub/sub across regions.
  const sub = new Redis(addr(process.env.ASIA));
  const got = [];
  const all = new Promise((resolve) => sub.on("message", (ch, msg) => { got.push(msg); if (got.length === 5) resolve(); }));
  await sub.subscribe("io:news");
  for (let i = 0; i < 5; i++) { await east.publish("io:news", "m" + i); }
  await all;
  assert(got.join(",") === "m0,m1,m2,m3,m4", "messages " + got);

  console.log("ioredis script: ok (" + retries + " WATCH retries)");
  for (const c of [east, west, asia, eastWatch, westWatch, consumer, sub]) { c.disconnect(); }
}
main().catch((e) => { console.error(e); process.exit(1); });
`
