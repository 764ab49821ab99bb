/** `npm run pipeline -- --help`. Defaults come from the code that applies them, so the text cannot drift. */
import { DEFAULT_MAX_REQUEUES, DEFAULT_SIGNAL_SEC } from "../../lib/slurm/index.ts";
import { PRESET_NAMES } from "../../lib/stages/presets.ts";
import { KEEP_LAST_DEFAULT, MODEL_DEFAULTS, SMOKE_MODEL } from "../../lib/stages/table.ts";
import { DEFAULT_TB_HOST, DEFAULT_TB_PORT } from "../../lib/tensorboard/launcher.ts";
import {
  DEFAULT_INFER_PROMPT,
  DEFAULT_STALL_TIMEOUT_SEC,
  DEFAULT_STOP_GRACE_SEC,
  SMOKE_TRAINER_FLAGS,
} from "./settings.ts";

const smokeFlags = SMOKE_TRAINER_FLAGS.map(([name, value]) => `--${name} ${value}`).join(" ");

export const HELP = `Usage: npm run pipeline -- [flags] [-- trainer flags]
       node --import tsx pipelines/run.ts [flags] [-- trainer flags]

Trains a MiniMind-style model through pretrain → sft → dpo → r1, then prints an inference sample.
Each stage resumes from its latest valid checkpoint and finished stages are skipped, so after
Ctrl+C, a crash or a reboot the same command picks up where the run stopped. Each stage runs as a
child process in its own process group; its output is echoed with a [stage] prefix and kept in
OUT_DIR/<stage>/logs/attempt-N.log.

Flags:
  --smoke-test             the whole pipeline on a tiny model (hidden ${SMOKE_MODEL.hidden_size} × ${SMOKE_MODEL.num_hidden_layers} layers) in well
                           under a minute, in OUT_DIR=out/smoke, started afresh each time
                           (CLEANUP_SMOKE=0 resumes instead); trainers get ${smokeFlags}
  --skip-pretrain, --skip-sft, --skip-dpo, --skip-r1, --skip-infer
                           leave that step out; the next stage starts from what it left on disk
  --stages a,b             run only these, in pipeline order: pretrain, sft, dpo, r1, infer
                           (MiniMind's names full_sft, rlhf, reason, distill_reason work too)
  --infer-only             no training: sample from the newest stage's latest checkpoint
  --infer-checkpoint PATH  no training: sample from PATH (step dir, stage dir, .safetensors or .pth)
  --dpo-sweep              the dpo stage becomes a sweep: one DPO run per SFT checkpoint listed in
                           OUT_DIR/sft/checkpoints.jsonl, into OUT_DIR/dpo/from_step_N/ (r1 and
                           infer are left out); see npm run dpo-sweep -- --help
  --watch                  with --dpo-sweep: run the sweep beside the sft stage, starting a DPO run
                           as each SFT checkpoint is saved
  --max-parallel N         with --dpo-sweep: DPO runs at once [1], one GPU of CUDA_VISIBLE_DEVICES each
  --dpo-sweep-report       no training: print SFT step → preference accuracy of the sweep's runs and
                           write OUT_DIR/dpo/sweep_report.csv
  --restart a,b            train these stages afresh: their checkpoints are moved aside to
                           <stage>/checkpoints.before-<time>/ (never deleted); later stages that hold
                           checkpoints must be restarted too (they would be stale). Running the same
                           command again after Ctrl+C resumes the new run.
  --executor local|slurm   where the stages run [EXECUTOR, else local]; slurm: each stage one sbatch
                           job, chained after the one before, followed here (README: Running on Slurm)
  --status                 each stage's state (and Slurm job id and state) of the run in OUT_DIR
  --cancel                 cancel the run's Slurm jobs and end every process of theirs this host sees
  -- ARGS                 the rest goes to every trainer (flags: npm run train:sft -- --help),
                           e.g. -- --backend cpu --max_steps 200
  -h, --help               this text

Environment [default]:
  OUT_DIR                  outputs [out; --smoke-test: out/smoke]
  DATA_DIR                 data folder [data/, the embedded sample data, generated on first use]
  PRETRAIN_JSON, SFT_JSON, DPO_JSON, R1_JSON
                           one stage's data [DATA_DIR/pretrain_hq.jsonl, sft_mini_512.jsonl,
                           dpo.jsonl, r1_mix_1024.jsonl]
  PRETRAIN_OUT, SFT_OUT, DPO_OUT, R1_OUT
                           one stage's folder [OUT_DIR/<stage>]
  TF_DIR                   TensorBoard logdir; stage runs go in TF_DIR/<stage> [OUT_DIR/tensorboard]
  MODEL_PRESET             MiniMind's model shape for every trainer (--preset): ${PRESET_NAMES.join(", ")};
                           needs MiniMind's tokenizer: -- --tokenizer <minimind>/model/tokenizer.json
                           (npm run train:sft -- --help lists each preset's shape)
  MODEL_HIDDEN_SIZE        [${MODEL_DEFAULTS.hidden_size}; --smoke-test ${SMOKE_MODEL.hidden_size}; MODEL_PRESET's]
  MODEL_NUM_LAYERS         [${MODEL_DEFAULTS.num_hidden_layers}; --smoke-test ${SMOKE_MODEL.num_hidden_layers}; MODEL_PRESET's]
  SAVE_INTERVAL            checkpoint every N optimizer updates [each trainer's default]
  KEEP_LAST                step checkpoints kept per stage [${KEEP_LAST_DEFAULT}] (KEEP_LAST_CHECKPOINTS works too)
  LOG_INTERVAL             log every N optimizer updates [each trainer's default]
  PRETRAIN_MAX_STEPS, PRETRAIN_EPOCHS, PRETRAIN_BATCH_SIZE, PRETRAIN_ACCUM_STEPS, PRETRAIN_SEQ_LEN
                           one stage's --max_steps, --epochs, --batch_size, --accumulation_steps,
                           --max_seq_len; likewise SFT_…, DPO_…, R1_… [each trainer's default]
  PRETRAIN_ARGS, SFT_ARGS, DPO_ARGS, R1_ARGS
                           more flags for one trainer, shell-quoted: SFT_ARGS="--learning_rate 5e-4"
  INIT_FROM                weights for the first stage of this run when it has no checkpoint of its own:
                           a step dir, stage dir, .safetensors or MiniMind's .pth (e.g. pretrain_512.pth)
                           [the previous stage's latest checkpoint, else its weights file]
                           (MLX_INIT_FROM works too)
  STOP_GRACE_SEC           on Ctrl+C, SIGTERM or SIGHUP, how long the running trainer gets to finish
                           its step, save a checkpoint and exit before its process group is killed
                           [${DEFAULT_STOP_GRACE_SEC}]. Generous on purpose: the wait ends as soon as the trainer has
                           saved, and a large model on a slow disk must never be killed mid-save.
                           A second Ctrl+C kills at once (two signals within 0.3 s count as one).
  STALL_TIMEOUT            seconds a trainer may go without a heartbeat before it is stopped as stalled
                           (a deadlocked backend or driver) [${DEFAULT_STALL_TIMEOUT_SEC}]; 0 turns it off
  TB_AUTO                  start a board on TF_DIR in the background, or reuse the one already
                           serving it [1]; it keeps running afterwards (npm run tensorboard -- --stop)
  TB_BOARD                 tensorboard, builtin (Baton's own board, no Python) or auto: TensorBoard
                           when installed, else the built-in board [auto]
  TB_PORT, TB_HOST         [${DEFAULT_TB_PORT} if free, else a free port; ${DEFAULT_TB_HOST}]
  TENSORBOARD_BINARY       [tensorboard on PATH]
  INFER_PROMPT             [${DEFAULT_INFER_PROMPT}]
  INFER_MAX_NEW_TOKENS     [64]
  INFER_TEMPERATURE        [0: greedy]
  INFER_TOP_P, INFER_ARGS  --top_p and more flags for trainer/infer.ts, when set
  CLEANUP_SMOKE            --smoke-test clears its OUT_DIR first [1]
  EXECUTOR                 local or slurm [local]. With slurm (the out folder must be on a filesystem the
                           compute nodes share): Ctrl+C stops following (the jobs go on), the same command
                           follows them again; TensorBoard and the inference sample run on this host
  SLURM_PARTITION, SLURM_ACCOUNT, SLURM_TIME, SLURM_GRES
                           sbatch --partition, --account, --time, --gres of every job [Slurm's defaults]
  SBATCH_ARGS              more sbatch options, shell-quoted: SBATCH_ARGS="--qos=low -C a100"
  SLURM_SIGNAL_SEC         the time-limit warning (SIGUSR1) this many seconds before the limit: the trainer
                           saves and requeues its job [${DEFAULT_SIGNAL_SEC}]
  SLURM_MAX_REQUEUES       restarts after which a job no longer requeues itself and its stage is reported
                           failed [${DEFAULT_MAX_REQUEUES}]

When several sources set the same trainer flag, the later one wins: paths and shape < the plan
(--resume / --init_from / --restart) < --smoke-test < environment < arguments after -- < <STAGE>_ARGS.

Re-running with other settings: a different model shape or tokenizer than a stage's checkpoints is
an error naming the flag and --restart; a longer --max_steps or --epochs continues a finished stage;
other changes apply from the next update (a warning lists them). A stage trained from an earlier
stage's checkpoint is stale once that stage is retrained: the run stops and says which to --restart.

Outputs (OUT_DIR):
  pipeline.json                   where the run stands: each stage's state, attempts, exit, checkpoint
  <stage>/checkpoints/step_N/     step checkpoints (npm run ckpt -- ls OUT_DIR/<stage>)
  <stage>/logs/attempt-N.log      everything one attempt printed
  pretrain_<hidden>.pth           MiniMind's weight files, replaced at every save: full_sft_, rlhf_,
  pretrain_<hidden>.safetensors   reason_ likewise (-- --legacy_format pth|safetensors|both, --legacy_dtype)
  tensorboard/<stage>/            TensorBoard event files (TF_DIR)
  tensorboard.json, tensorboard.log

Exit status: 0 done; 1 a stage failed (2 if it failed on bad data or flags); 2 bad flags or
environment, or a stage has nothing to start from; 130/143/129 interrupted by SIGINT/SIGTERM/SIGHUP
after the running trainer saved (EXECUTOR=slurm: 130 when Ctrl+C stopped the following, 143 when a
job was cancelled).
`;
