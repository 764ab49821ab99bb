/** lib/slurm without a cluster: option spelling, job-script quoting (read back by bash), record parsing, settings. */
import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import {
  baseSbatchOptions,
  jobInfoFromFields,
  parseScontrolFields,
  renderJobScript,
  sbatchArgs,
  shellQuote,
  slurmSettingsFromEnv,
  writeJobScript,
} from "../lib/slurm/index.ts";

test("options become one sbatch argument each, user extras last so they win", () => {
  const args = sbatchArgs({
    ...baseSbatchOptions(
      slurmSettingsFromEnv({
        SLURM_PARTITION: "gpu",
        SLURM_ACCOUNT: "proj",
        SLURM_TIME: "2:00:00",
        SLURM_GRES: "gpu:1",
        SLURM_SIGNAL_SEC: "90",
        SBATCH_ARGS: `--qos=low -C "a100 80g" --partition=debug`,
      }),
    ),
    jobName: "baton-pretrain",
    output: "out/pretrain/logs/slurm-%j.out",
    afterOk: ["12", "13_2"],
    array: { spec: "0-4", maxParallel: 2 },
    export: ["ALL"],
    chdir: "/work/run",
  });
  assert.deepEqual(args, [
    "--job-name=baton-pretrain",
    "--output=out/pretrain/logs/slurm-%j.out",
    "--open-mode=append",
    "--requeue",
    "--signal=B:USR1@90",
    "--dependency=afterok:12:13_2",
    "--partition=gpu",
    "--account=proj",
    "--time=2:00:00",
    "--gres=gpu:1",
    "--array=0-4%2",
    "--export=ALL",
    "--chdir=/work/run",
    "--qos=low",
    "-C",
    "a100 80g",
    "--partition=debug",
  ]);
});

test("bad option values are refused naming the option", () => {
  assert.throws(
    () => sbatchArgs({ afterOk: [""] }),
    /^UserError: sbatch --dependency: "" is not a Slurm job id/,
  );
  assert.throws(
    () => sbatchArgs({ array: { spec: "0-2; rm -rf /" } }),
    /sbatch --array: .*expected task ids/,
  );
  assert.throws(() => sbatchArgs({ array: { spec: "0-2", maxParallel: 0 } }), /sbatch --array: %0/);
  assert.throws(() => sbatchArgs({ export: ["A=1,2"] }), /sbatch --export: "A=1,2" is not a variable name/);
  assert.throws(
    () => sbatchArgs({ signal: { name: "USR1", secondsBefore: -1, batchShellOnly: true } }),
    /--signal: -1 s/,
  );
  assert.throws(() => sbatchArgs({ jobName: "a\nb" }), /--job-name: .* line break/);
  assert.throws(() => sbatchArgs({ extraArgs: ["gpu"] }), /^UserError: SBATCH_ARGS: "gpu" is not a flag/);
  assert.throws(
    () => slurmSettingsFromEnv({ SLURM_SIGNAL_SEC: "2m" }),
    /^UserError: SLURM_SIGNAL_SEC=2m: expected a whole number/,
  );
  assert.throws(
    () => slurmSettingsFromEnv({ SBATCH_ARGS: `--comment "open` }),
    /SBATCH_ARGS: unterminated " quote/,
  );
  assert.deepEqual(slurmSettingsFromEnv({}).extraArgs, []);
  assert.equal(slurmSettingsFromEnv({}).signalSeconds, 120);
  assert.equal(slurmSettingsFromEnv({}).maxRequeues, 3);
});

test("the job script hands bash back every value exactly: env, arguments, quotes, $ and newlines", async () => {
  const dir = await mkdtemp(join(tmpdir(), "baton-slurm-script-"));
  try {
    const odd = ["it's", 'say "hi"', "$HOME `id` $(id)", "a\nb", "", "--flag=x y", "ünï", "\\n"];
    const script = join(dir, "job.sh");
    await writeJobScript(script, {
      description: "quoting",
      options: { jobName: "quote test", output: join(dir, "out %j.log"), afterOk: ["5"], hold: true },
      env: { ODD: odd.join("|"), PLAIN: "x" },
      command: [
        "node",
        "-e",
        "console.log(JSON.stringify([process.env.ODD, process.env.PLAIN, ...process.argv.slice(1)]))",
        ...odd,
      ],
    });
    assert.equal((await stat(script)).mode & 0o777, 0o755);
    const { stdout } = await execa("bash", [script], { env: { SLURM_JOB_ID: "7" } });
    const [marker, json] = stdout.split("\n");
    assert.match(marker ?? "", /^\[slurm\] job 7 restart 0 on /);
    assert.deepEqual(JSON.parse(json ?? ""), [odd.join("|"), "x", ...odd]);
    const text = renderJobScript({ description: "d", options: { jobName: "quote test" }, command: ["true"] });
    assert.match(text, /^#!\/bin\/bash\n/);
    assert.match(text, /^#SBATCH --job-name="quote test"$/m);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("values sbatch could not read back from an #SBATCH line are refused, not mangled", () => {
  assert.throws(
    () => renderJobScript({ description: "d", options: { jobName: 'a "b"' }, command: ["true"] }),
    /sbatch option "--job-name=a \\"b\\"": a " or \\ cannot be written into an #SBATCH line/,
  );
  assert.throws(() => renderJobScript({ description: "d", options: {}, command: [] }), /no command/);
  assert.throws(
    () => renderJobScript({ description: "d", options: {}, env: { "A-B": "x" }, command: ["true"] }),
    /"A-B" is not a variable name/,
  );
  assert.equal(shellQuote("plain/path-1.2:x=y,z@%"), "plain/path-1.2:x=y,z@%");
  assert.equal(shellQuote("it's"), `'it'\\''s'`);
});

test("scontrol -o records: values with spaces, array tasks, exit codes, held", () => {
  const line =
    "JobId=13 ArrayJobId=11 ArrayTaskId=1 ArrayTaskThrottle=2 JobName=a b=c UserId=root(0) Priority=0 " +
    "JobState=PENDING Reason=job_requeued_in_held_state Dependency=(null) Requeue=1 Restarts=2 BatchFlag=1 " +
    "ExitCode=3:9 Command=/tmp/dir with space/job.sh WorkDir=/tmp Comment=x y 'z'  StdErr=/tmp/o.out Power= ";
  const fields = parseScontrolFields(line);
  assert.equal(fields.Command, "/tmp/dir with space/job.sh");
  assert.equal(fields.Comment, "x y 'z'");
  assert.equal(fields.Power, "");
  const info = jobInfoFromFields(fields);
  assert.equal(info.jobId, "11_1");
  assert.equal(info.internalId, "13");
  assert.equal(info.restartCount, 2);
  assert.deepEqual(info.exitCode, { status: 3, signal: 9 });
  assert.equal(info.held, true);
  assert.equal(info.phase, "pending");
  // " b=" is not taken for a key (keys start upper-case): the name keeps it.
  assert.equal(info.name, "a b=c");
  const range = jobInfoFromFields(parseScontrolFields(line.replace("ArrayTaskId=1", "ArrayTaskId=3-5")));
  assert.equal(range.jobId, "11_[3-5]");
  assert.throws(() => jobInfoFromFields(parseScontrolFields("JobId=1 JobName=x")), /record without JobState/);
});

test("with a dependency, --kill-on-invalid-dep=yes; neither is written into a resubmittable script", () => {
  const options = { afterOk: ["12"], killOnInvalidDependency: true, jobName: "x" };
  assert.deepEqual(sbatchArgs(options), [
    "--job-name=x",
    "--dependency=afterok:12",
    "--kill-on-invalid-dep=yes",
  ]);
  assert.deepEqual(
    sbatchArgs({ killOnInvalidDependency: true }),
    [],
    "nothing to kill on without a dependency",
  );
  const script = renderJobScript({ description: "d", options, command: ["true"] });
  assert.doesNotMatch(script, /^#SBATCH .*(dependency|kill-on-invalid-dep)/m);
});
