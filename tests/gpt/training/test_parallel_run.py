"""gpt/training/parallel.py without MPI: the checks, the batch shares, the random streams, the thread count, the
gradient-accumulation hook and the way an error ends a job (the runs under mpiexec are in
tests/distributed/test_gpt_train_mpi.py)."""
import contextlib
import io
import json
import signal

import numpy as np
import pytest

from gpt.training import parallel as parallel_run
from gpt.errors import TrainingError
from gpt.cli.report import run_command
from gpt.training.checkpoint import check_processes, saved_world
from gpt.training.parallel import Team, threads_per_rank
from gpt.training.step import train_step
from gpt.training.stopping import StopFlag
from gpt.training.settings import TrainConfig
from gpt.training.pretrain import train

from gpt_helpers import small_model


def _args(**over):
    return TrainConfig(**{"out": "runs/x", "batch_size": 8, **over})


def _meta(world, states=None):
    state = {"bit_generator": "PCG64", "state": {"state": 1, "inc": 3}, "has_uint32": 0, "uinteger": 0}
    return {"parallel": {"world_size": world, "rng": states if states is not None else [state] * world}}


def test_a_batch_that_does_not_split_over_the_ranks_is_refused_in_flags():
    with pytest.raises(TrainingError, match=r"--batch-size 8 does not split over the 3 processes of mpiexec -n 3"):
        Team(0, 3, "mpi").check(_args())
    Team(0, 4, "mpi").check(_args())


def test_a_gpu_run_needs_nccl_chosen_on_the_command_line():
    with pytest.raises(TrainingError, match="pass --device cuda on the command line"):
        Team(0, 2, "mpi").check(_args(device="cuda"))
    Team(0, 2, "nccl").check(_args(device="cuda"))


@pytest.mark.parametrize("saved, now", [(2, 1), (1, 2), (4, 2)])
def test_a_checkpoint_resumes_only_on_its_number_of_processes(saved, now):
    meta = _meta(saved) if saved > 1 else {}
    how = "python -m gpt train --resume --out runs/x, without mpiexec" if saved == 1 else \
        f"mpiexec -n {saved} python -m gpt train --resume --out runs/x"
    with pytest.raises(TrainingError, match=f"trained by .* resume it with {how}"):
        check_processes(meta, now, "runs/x")
    check_processes(meta, saved, "runs/x")


@pytest.mark.parametrize("record", [{"world_size": 2, "rng": [{}]}, {"world_size": "2", "rng": [{}, {}]},
                                    {"world_size": 0, "rng": []}, {"rng": []}, [2]])
def test_a_damaged_parallel_record_is_named(record):
    with pytest.raises(TrainingError, match="'parallel' field is damaged"):
        saved_world({"parallel": record})


def test_resuming_a_two_process_checkpoint_alone_says_how(tmp_path, small_text):
    a = TrainConfig(data=str(small_text), out=str(tmp_path / "run"), vocab_size=300, context_length=16, emb_dim=16,
                    n_layers=1, n_heads=2, batch_size=4, max_steps=1, eval_batches=1, sample_tokens=1)
    train(a, stream=io.StringIO())
    path = tmp_path / "run" / "checkpoint.json"
    meta = json.loads(path.read_text())
    meta["parallel"] = {"world_size": 2, "rng": [meta["rng"], meta["rng"]]}
    path.write_text(json.dumps(meta))
    with pytest.raises(TrainingError, match="trained by 2 processes and this is one process: resume it with "
                                            "mpiexec -n 2"):
        train(TrainConfig(out=a.out, max_steps=2), resume=True, given=("out", "max_steps"))


def test_each_rank_takes_its_rows_of_the_global_batch():
    x, y = np.arange(24).reshape(8, 3), -np.arange(24).reshape(8, 3)
    rows = [Team(r, 4).share((x, y)) for r in range(4)]
    assert all(len(part[0]) == 2 for part in rows)
    np.testing.assert_array_equal(np.concatenate([part[0] for part in rows]), x)
    np.testing.assert_array_equal(np.concatenate([part[1] for part in rows]), y)


def test_rank_zero_keeps_the_one_process_stream_and_the_others_get_streams_of_their_own():
    from tinytensor import random
    random.set_state(np.random.default_rng(5).bit_generator.state)
    states = parallel_run._random_states(None, 3, "out")
    assert states[0] == random.get_state()
    draws = []
    for state in states:
        random.set_state(state)
        draws.append(random.uniform((4,)))
    assert not np.array_equal(draws[0], draws[1]) and not np.array_equal(draws[1], draws[2])
    assert parallel_run._random_states(_meta(3, states), 3, "out") == states        # a checkpoint's, as saved


def test_a_damaged_random_state_in_a_checkpoint_is_refused():
    bad = {"bit_generator": "MT19937", "state": {}}
    with pytest.raises(TrainingError, match="random state .* is damaged"):
        parallel_run._random_states(_meta(2, [bad, bad]), 2, "out")


def test_threads_are_the_machines_cores_over_its_ranks(monkeypatch):
    monkeypatch.setattr("tinytensor.config.threads", 4)
    assert threads_per_rank(2, cores=16, environ={"MPI_LOCALNRANKS": "8"}) == 2
    assert threads_per_rank(8, cores=16, environ={"OMPI_COMM_WORLD_LOCAL_SIZE": "2"}) == 4     # at most the usual
    assert threads_per_rank(4, cores=2, environ={}) == 1                 # not said: all ranks on this machine


def test_rank_zero_sends_json_and_arrays_whole(alone_world):
    state = np.random.default_rng(1).bit_generator.state              # 128-bit integers in JSON
    described, arrays = parallel_run._broadcast(Team(0, 1), {"rng": state}, {"ids": np.arange(5, dtype=np.int32),
                                                                            "none": np.zeros((0, 3))})
    assert described == {"rng": state} and arrays["ids"].dtype == np.int32 and arrays["none"].shape == (0, 3)
    assert parallel_run._gather_json(Team(0, 1), state) == [state]


@pytest.fixture
def alone_world(monkeypatch):
    import tinytensor.distributed as dist
    monkeypatch.setattr(dist, "_world", None)
    for name in dist._LAUNCHER_VARS:
        monkeypatch.delenv(name, raising=False)


def test_gradient_accumulation_syncs_only_at_the_last_micro_batch():
    import tinytensor as tt
    import tinytensor.functional as F
    from tinytensor import optim
    model = small_model()
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    entered = []

    @contextlib.contextmanager
    def no_sync():
        entered.append(True)
        yield
    batch = (np.zeros((2, 4), dtype=np.int64), np.ones((2, 4), dtype=np.int64))
    train_step(opt, lambda b: F.cross_entropy(model(tt.tensor(b[0])), b[1]), [batch] * 3, lr=1e-3, no_sync=no_sync)
    assert len(entered) == 2


def test_ranks_other_than_zero_stop_without_a_word(capsys):
    quiet, loud = StopFlag(quiet=True), StopFlag()
    quiet._handle(signal.SIGTERM, None)
    assert quiet and quiet.exit_code == 143 and capsys.readouterr().err == ""
    loud._handle(signal.SIGTERM, None)
    assert "stopping (SIGTERM)" in capsys.readouterr().err


class _FakeJob:
    """tinytensor.distributed as seen by one rank of a job of two, recording what would end it."""

    def __init__(self, rank):
        self.rank_, self.calls = rank, []

    def is_initialized(self):
        return True

    def world_size(self):
        return 2

    def rank(self):
        return self.rank_

    def abort(self, message, status):
        self.calls.append(("abort", message, status))
        raise SystemExit(status)

    def broadcast(self, x, src=0, async_op=False):
        self.calls.append(("broadcast", int(x[0])))
        return None


def _fail(error):
    def command():
        raise error
    return command


def test_an_error_on_rank_one_ends_the_whole_job_a_second_later(monkeypatch, capsys):
    job = _FakeJob(1)
    monkeypatch.setattr(parallel_run, "dist", job)
    monkeypatch.setattr(parallel_run, "_team", Team(1, 2))
    monkeypatch.setattr(parallel_run.time, "sleep", lambda s: job.calls.append(("sleep", s)))
    with pytest.raises(SystemExit):
        run_command(_fail(RuntimeError("disk on fire")))
    assert job.calls == [("sleep", 1.0), ("abort", "unexpected RuntimeError: disk on fire; rerun with --debug (or "
                                                   "TINYTENSOR_DEBUG=1) for the traceback", 1)]


def test_rank_zero_failing_while_preparing_lets_the_others_end_quietly(monkeypatch, capsys):
    job, team = _FakeJob(0), Team(0, 2)
    monkeypatch.setattr(parallel_run, "dist", job)
    monkeypatch.setattr(parallel_run, "_team", team)
    monkeypatch.setattr(parallel_run, "_wait", lambda work: None)
    assert run_command(_fail(TrainingError("--out is a file"))) == 2
    assert job.calls == [("broadcast", -2)] and capsys.readouterr().err == "error: --out is a file\n"
    team.sent = True                                     # once the run is sent, an error aborts the job
    with pytest.raises(SystemExit):
        run_command(_fail(TrainingError("late")))
    assert job.calls[-1] == ("abort", "late", 2)


@pytest.mark.parametrize("rank", [0, 1])
def test_fine_tuning_under_mpiexec_is_refused_by_every_rank(monkeypatch, tmp_path, rank):
    # each rank says it (the first to report it ends the job: end_job); none ends quietly
    from types import SimpleNamespace

    from gpt.errors import FinetuneError
    from gpt.finetune import pipeline
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setenv("PMI_RANK", str(rank))
    a = SimpleNamespace(out=str(tmp_path / "out"), init=str(tmp_path / "base"), data="x.tsv", download=False)
    for run in (pipeline.run_classify, pipeline.run_instruct):
        with pytest.raises(FinetuneError, match="fine-tuning runs on one process: start it without mpiexec"):
            run(a)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("rank", [0, 1])
def test_a_job_that_cannot_start_mpi_or_nccl_is_said_by_every_rank(monkeypatch, rank):
    import tinytensor.distributed as dist
    chosen = []

    def init(backend):
        chosen.append(backend)
        raise RuntimeError("device 'cuda' needs CuPy")
    monkeypatch.setattr(dist, "launched_by_mpi", lambda: True)
    monkeypatch.setattr(dist, "init", init)
    monkeypatch.setenv("PMI_RANK", str(rank))
    with pytest.raises(TrainingError, match="--device cuda under mpiexec: device 'cuda' needs CuPy"):
        parallel_run.join("cuda")
    assert chosen == ["nccl"]                                    # a GPU run joins NCCL, one GPU per rank


def test_without_mpiexec_a_process_is_alone(alone_world):
    assert parallel_run.join("cpu") is None                  # gpt.train then runs pretrain.train, no team


@pytest.mark.parametrize("rank", ["0", "1"])
def test_a_bad_flag_under_mpiexec_ends_the_job_from_any_rank(monkeypatch, capsys, rank):
    from gpt.cli import build_parser
    ended_job = []
    monkeypatch.setenv("PMI_RANK", rank)
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setattr(parallel_run, "end_job", lambda message, status: ended_job.append((message, status)))
    with pytest.raises(SystemExit) as ended:
        build_parser().parse_args(["train", "--bogus"])
    assert ended.value.code == 2
    assert ended_job == [("python -m gpt train: unrecognized arguments: --bogus (see --help)", 2)]


def test_an_error_before_mpi_starts_ends_the_job_through_the_launcher(monkeypatch, capsys):
    # no rank waits in MPI's start-up for one that failed before it (issue 26, 2)
    import tinytensor.distributed as dist
    from tinytensor.distributed import launcher
    monkeypatch.setattr(dist, "_world", None)
    monkeypatch.setenv("PMI_RANK", "1")
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setattr(parallel_run.time, "sleep", lambda s: None)
    monkeypatch.setattr(launcher, "end_job", lambda status: (_ for _ in ()).throw(SystemExit(status)))
    with pytest.raises(SystemExit) as ended:
        run_command(_fail(TrainingError("no GPU here")))
    assert ended.value.code == 2
    assert capsys.readouterr().err == "error: rank 1 of 2: no GPU here\n"


def test_zero_is_refused_with_float16_loss_scaling():
    from types import SimpleNamespace
    a = SimpleNamespace(out="runs/x", batch_size=8, device="cpu", zero=True, dtype="float16")
    with pytest.raises(TrainingError, match="--zero does not combine with --dtype float16"):
        Team(0, 2, "mpi").check(a)
    Team(0, 2, "mpi").check(SimpleNamespace(**{**vars(a), "dtype": "float32"}))
