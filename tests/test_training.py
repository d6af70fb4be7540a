"""Fine-tuning (issue #5): real TRL SFT steps on the tiny offline Qwen3-VL, real accelerate launches.

Kept small (a handful of rows, 2-8 steps, 4-token photos) so the whole module stays within its budget.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "scripts" / "configs"
TINY = CONFIGS / "tiny-cpu.yaml"

# Small enough to be quick, large enough for both classes in the evaluation rows.
FAST = [
    "--max_train_samples", "12",
    "--max_eval_samples", "12",
    "--max_pixels", "4096",
    "--max_text_tokens", "96",
    "--eval_batch_size", "12",
    "--per_device_eval_batch_size", "12",
    "--logging_steps", "1",
    "--disable_tqdm", "true",
    "--reason_source", "evidence",  # the fitted-baseline path is covered by test_conversations_from_demo_rows
]  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # The tiny model gains nothing from intra-op threads, and on a loaded 2-core machine OpenMP threads
    # spinning on each other made training steps 15x slower.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _args(tiny_model_dir: Path, dataset: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--config", str(TINY),
        "--model_name_or_path", str(tiny_model_dir),
        "--build_tiny_model", "false",
        "--dataset", str(dataset),
        "--output_dir", str(out),
        *FAST,
        *extra,
    ]  # fmt: skip


def _run(argv: list[str]):
    from hf_spamguard.training.run import parse_args, train

    return train(*parse_args(argv))


# --------------------------------------------------------------------------------------------------
# Arguments and configs (no model)
# --------------------------------------------------------------------------------------------------


def test_every_project_field_has_help() -> None:
    from hf_spamguard.training import ProjectArgs

    for f in dataclasses.fields(ProjectArgs):
        assert f.metadata.get("help"), f"ProjectArgs.{f.name} has no help text"


@pytest.mark.parametrize("name", ["qwen3-vl-2b-qlora.yaml", "qwen3-vl-8b-qlora.yaml", "tiny-cpu.yaml"])
def test_shipped_configs_parse_with_cli_overrides(name: str) -> None:
    from hf_spamguard.training.run import parse_args

    project, sft, model = parse_args(
        ["--config", str(CONFIGS / name), "--learning_rate", "1e-3", "--split_vote", "drop"], cuda=False
    )
    config = yaml.safe_load((CONFIGS / name).read_text())
    assert model.model_name_or_path == config["model_name_or_path"]
    assert sft.learning_rate == 1e-3  # the command line beats the YAML
    assert project.split_vote == "drop"
    assert sft.max_length is None and sft.assistant_only_loss
    # CPU defaults: float32, no paged optimiser, even for the GPU configs.
    assert sft.use_cpu and not sft.bf16 and sft.optim == "adamw_torch"
    assert not sft.gradient_checkpointing
    if "qlora" in name:
        assert model.load_in_4bit and model.use_bnb_nested_quant and model.bnb_4bit_quant_type == "nf4"


def test_cuda_defaults_pick_qlora_settings() -> None:
    from hf_spamguard.training.args import device_defaults

    cpu = device_defaults(cuda=False)
    assert cpu["use_cpu"] and cpu["dtype"] == "float32" and cpu["optim"] == "adamw_torch"
    # On CUDA bf16 support is asked of torch; without a GPU only the keys can be checked.
    assert {"bf16", "fp16", "gradient_checkpointing", "optim", "dtype"} <= set(cpu)


def test_cuda_defaults_in_the_parsed_qlora_config(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from hf_spamguard.training.args import device_defaults
    from hf_spamguard.training.backends import _torch_dtype, quantization_config
    from hf_spamguard.training.run import parse_args

    # Both precision branches; the GPU's bf16 support is the only hardware property they read.
    for capable, half in ((True, "bfloat16"), (False, "float16")):
        with monkeypatch.context() as m:
            m.setattr(torch.cuda, "is_bf16_supported", lambda *a, capable=capable, **k: capable)
            cuda = device_defaults(cuda=True)
        assert (cuda["bf16"], cuda["fp16"], cuda["dtype"]) == (capable, not capable, half)
        assert not cuda["use_cpu"] and cuda["gradient_checkpointing"] and cuda["optim"] == "paged_adamw_8bit"

    # The full parse, on this machine's real answer (SFTConfig refuses bf16 where no GPU supports it, so
    # a CPU-only machine parses the fp16 branch, an Ampere GPU the bf16 one).
    bf16 = bool(torch.cuda.is_bf16_supported())
    project, sft, model = parse_args(["--config", str(CONFIGS / "qwen3-vl-2b-qlora.yaml")], cuda=True)
    assert not sft.use_cpu and (sft.bf16, sft.fp16) == (bf16, not bf16)
    assert model.dtype == ("bfloat16" if bf16 else "float16")
    assert sft.gradient_checkpointing and sft.optim == "paged_adamw_8bit"
    assert sft.report_to == ["tensorboard"] and sft.load_best_model_at_end
    assert project.early_stopping_patience == 3 and project.backend == "transformers"
    # The 4-bit config the transformers backend builds from it: NF4 with double quantisation, computing in
    # the GPU's half precision, vision tower and lm_head left unquantised.
    compute = _torch_dtype(model.dtype, cuda=True)
    assert compute == (torch.bfloat16 if bf16 else torch.float16)
    quant = quantization_config(model, compute)
    assert quant.load_in_4bit and quant.bnb_4bit_quant_type == "nf4" and quant.bnb_4bit_use_double_quant
    assert quant.bnb_4bit_compute_dtype == compute
    assert set(quant.llm_int8_skip_modules) == {"model.visual", "lm_head"}
    # A flag still beats the machine's default.
    _, sft, _ = parse_args(
        ["--config", str(CONFIGS / "qwen3-vl-2b-qlora.yaml"), "--optim", "adamw_torch"], cuda=True
    )
    assert sft.optim == "adamw_torch"


def test_requested_backend_reads_flags_then_config(tmp_path: Path) -> None:
    from hf_spamguard.training.backends import requested_backend

    config = tmp_path / "unsloth.yaml"
    config.write_text("backend: unsloth\nlearning_rate: 1.0e-4\n")
    assert requested_backend(["--config", str(TINY)]) == "transformers"
    assert requested_backend(["--config", str(config)]) == "unsloth"
    assert requested_backend(["--config", str(config), "--backend", "transformers"]) == "transformers"
    assert requested_backend(["--config", str(TINY), "--backend=unsloth"]) == "unsloth"
    assert requested_backend(["--max_steps", "3"]) == "transformers"  # ProjectArgs' default


def test_preimport_unsloth_is_a_no_op_without_cuda(tmp_path: Path) -> None:
    # A stand-in `unsloth` package on the path records any import attempt (the real one is not installed
    # here), so a missing CUDA check would show up as a marker file.
    fake = tmp_path / "site" / "unsloth"
    fake.mkdir(parents=True)
    marker = tmp_path / "unsloth-imported"
    (fake / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    code = (
        "import sys, torch\n"
        "assert not torch.cuda.is_available(), 'this test needs a machine without CUDA'\n"
        "from hf_spamguard.training.backends import preimport_unsloth\n"
        # The QLoRA config: no use_cpu in it, so only the missing GPU may stop the import.
        f"argv = ['--config', {str(CONFIGS / 'qwen3-vl-2b-qlora.yaml')!r}, '--backend', 'unsloth']\n"
        "print(preimport_unsloth(argv), preimport_unsloth(['--config', argv[1]]))\n"
        "print(sorted(m for m in ('transformers', 'trl', 'peft', 'unsloth') if m in sys.modules))\n"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(tmp_path / "site")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split("\n")[:2] == ["False False", "[]"]
    assert not marker.exists()


def test_accelerate_configs_are_valid_yaml() -> None:
    expected = {
        "single_gpu.yaml": "NO",
        "multi_gpu.yaml": "MULTI_GPU",
        "deepspeed_zero2.yaml": "DEEPSPEED",
        "deepspeed_zero3.yaml": "DEEPSPEED",
        "fsdp.yaml": "FSDP",
    }
    for name, kind in expected.items():
        cfg = yaml.safe_load((CONFIGS / "accelerate" / name).read_text())
        assert cfg["distributed_type"] == kind, name
    assert (
        yaml.safe_load((CONFIGS / "accelerate" / "deepspeed_zero3.yaml").read_text())["deepspeed_config"][
            "zero_stage"
        ]
        == 3
    )


def test_bad_project_args_are_refused() -> None:
    from hf_spamguard.training import ProjectArgs

    with pytest.raises(ValueError, match="split_vote"):
        ProjectArgs(split_vote="sometimes")
    with pytest.raises(ValueError, match="backend"):
        ProjectArgs(backend="jax")
    assert ProjectArgs(eval_split="none").eval_split is None


# --------------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------------


def test_split_vote_weights() -> None:
    from hf_spamguard.training.formatting import split_vote_weight

    assert split_vote_weight(1.0, "downweight") == 1.0
    assert split_vote_weight(0.5, "downweight") == 0.5
    assert split_vote_weight(0.0, "downweight", 0.2) == 0.2
    assert split_vote_weight(0.5, "keep") == 1.0
    assert split_vote_weight(0.5, "drop") is None
    assert split_vote_weight(None, "drop") == 1.0


def test_conversations_from_demo_rows(demo_dataset_dir: Path) -> None:
    from hf_spamguard.data import load_listings
    from hf_spamguard.training.formatting import add_training_columns, as_sft_dataset, baseline_reasons

    ds = load_listings(demo_dataset_dir, split="train").select(range(40))
    reasons = baseline_reasons(
        ds["description"], ds["label"], fit_texts=ds["description"], fit_labels=ds["label"]
    )
    # Reasons explain the gold label, never a placeholder.
    for label, reason in zip(ds["label"], reasons, strict=True):
        assert reason and "training label" not in reason.lower()
        assert ("ordinary item description" in reason or "reads as an item description" in reason) == (
            label == 0
        )
    dropped = add_training_columns(ds, reasons, split_vote="drop")
    n_split = sum(c < 1 for c in ds["label_confidence"])
    assert n_split > 0 and len(dropped) == len(ds) - n_split
    kept = add_training_columns(ds, reasons, split_vote="downweight", min_weight=0.2)
    sft = as_sft_dataset(kept)
    with_image = next(i for i in range(len(ds)) if ds[i]["image"] is not None)
    without_image = next(i for i in range(len(ds)) if ds[i]["image"] is None)
    row = sft[with_image]
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert len(row["images"]) == 1 and {"type": "image"} in row["messages"][1]["content"]
    answer = json.loads(row["messages"][2]["content"][0]["text"])
    assert answer == {
        "is_spam": bool(ds[with_image]["label"]),
        "reason": reasons[with_image].replace('"', "'"),
    }
    assert sft[without_image]["images"] == []
    weights = [sft[i]["weight"] for i in range(len(ds))]
    assert min(weights) >= 0.2 and any(w < 1 for w in weights)


# --------------------------------------------------------------------------------------------------
# Training steps
# --------------------------------------------------------------------------------------------------


def test_loss_goes_down_on_a_repeated_batch_with_weights(
    tiny_model_dir: Path, demo_dataset_dir: Path, tmp_path: Path
) -> None:
    import torch
    from trl import ModelConfig, SFTConfig

    from hf_spamguard.data import load_listings
    from hf_spamguard.training.backends import load_transformers_backend
    from hf_spamguard.training.formatting import add_training_columns, as_sft_dataset
    from hf_spamguard.training.trainer import SpamGuardSFTTrainer

    # 4 rows and batch size 4: every step sees the same batch.
    ds = load_listings(demo_dataset_dir, split="train").select(range(4))
    reasons = [
        "lists unrelated brands after the item" if y else "ordinary item description" for y in ds["label"]
    ]
    confidence = [1.0, 0.5, 1.0, 0.0]
    ds = ds.remove_columns("label_confidence").add_column("label_confidence", confidence)
    ds = add_training_columns(ds, reasons, split_vote="downweight", min_weight=0.2)
    model_args = ModelConfig(model_name_or_path=str(tiny_model_dir), use_peft=True, lora_r=8, lora_alpha=16)
    args = SFTConfig(
        output_dir=str(tmp_path), use_cpu=True, bf16=False, activation_checkpointing=False, max_length=None,
        assistant_only_loss=True, per_device_train_batch_size=4, max_steps=8, learning_rate=1e-2,
        logging_steps=1, report_to=[], remove_unused_columns=False, save_strategy="no", optim="adamw_torch",
        disable_tqdm=True,
    )  # fmt: skip
    tm = load_transformers_backend(model_args, args, cuda=False)
    trainer = SpamGuardSFTTrainer(
        model=tm.model,
        args=args,
        train_dataset=as_sft_dataset(ds, tokenizer=tm.processor.tokenizer),
        processing_class=tm.processor,
        peft_config=tm.peft_config,
    )
    batch = trainer.data_collator([as_sft_dataset(ds)[i] for i in range(4)])  # what every step sees
    assert torch.allclose(batch["sample_weight"], torch.tensor([1.0, 0.5, 1.0, 0.2]))
    # Only the assistant answer is trained on (assistant_only_loss with {% generation %} markers).
    trained = tm.processor.tokenizer.decode(batch["input_ids"][0][batch["labels"][0] != -100])
    assert trained.startswith('{"is_spam": ') and "Listing description" not in trained

    # The weighted loss equals TRL's own loss at weight 1 and is smaller when rows are down-weighted.
    trainer.model.eval()
    with torch.no_grad():
        inputs = {k: v for k, v in batch.items() if k != "sample_weight"}
        plain = trainer.compute_loss(trainer.model, dict(inputs))
        ones = trainer.compute_loss(trainer.model, {**inputs, "sample_weight": torch.ones(4)})
        weighted = trainer.compute_loss(trainer.model, dict(batch))
    assert torch.allclose(plain, ones, rtol=1e-5)
    assert weighted < plain

    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 8
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses
    assert losses[-1] < 0.9 * losses[0], losses


def test_scoring_pass_gives_the_pipeline_logit_diffs(tiny_model_dir: Path) -> None:
    """Training evaluates (and calibrates) with exactly the scores the served pipeline computes."""
    from PIL import Image

    from hf_spamguard.pipeline import load_pipeline
    from hf_spamguard.prompts import PromptConfig
    from hf_spamguard.training.trainer import EvalRows, label_logit_diffs

    config = PromptConfig(max_pixels=4096)
    pipe = load_pipeline(tiny_model_dir, device="cpu", prompt_config=config)
    texts = ["Nike tee. tags: adidas puma gucci prada", "plain summer dress, worn once", "x"]
    images = [Image.new("RGB", (96, 64), "red"), None, Image.new("RGB", (40, 90), "blue")]
    rows = EvalRows(texts, images, [1, 0, 0])
    diffs = label_logit_diffs(pipe.model, pipe.processor, rows, batch_size=2, prompt_config=config)
    served = pipe(
        [{"text": t, "image": i} for t, i in zip(texts, images, strict=True)],
        batch_size=3,
        reason=False,
        return_logit_diff=True,
    )
    assert diffs.tolist() == pytest.approx([v["logit_diff"] for v in served], abs=1e-5)


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir: Path, demo_dataset_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("lora_run")
    # This run also builds its own tiny model on first use (build_tiny_model), as the demo does.
    result = _run(
        _args(
            tiny_model_dir,
            demo_dataset_dir,
            out,
            "--model_name_or_path",
            str(out / "tiny-model"),
            "--build_tiny_model",
            "true",
            "--max_steps",
            "2",
            "--eval_steps",
            "2",
            "--save_steps",
            "2",
        )
    )
    return out, result


def test_lora_run_writes_a_pipeline_ready_folder(lora_run) -> None:
    out, result = lora_run
    final = out / "final"
    assert result.final_dir == final and result.global_step == 2
    for name in ("model.safetensors", "config.json", "calibration.json", "policy.json", "prompt_config.json",
                 "tokenizer.json", "training_summary.json", "adapter/adapter_config.json", "spamguard_pipeline.py"):  # fmt: skip
        assert (final / name).is_file(), name
    assert not (final / "training_args.bin").exists()  # no pickles in a Hub-ready folder
    # The adapter published next to the merged weights names its base portably (issue #12.13): the base
    # is a local folder with no Hub id, so by its folder name, never by this machine's absolute path.
    adapter_cfg = json.loads((final / "adapter" / "adapter_config.json").read_text())
    assert adapter_cfg["base_model_name_or_path"] == "tiny-model"
    assert str(out) not in (final / "adapter" / "README.md").read_text()
    assert any("names its base model 'tiny-model'" in n for n in result.notes)
    prompt = json.loads((final / "prompt_config.json").read_text())
    assert (
        prompt["max_pixels"] == 4096 and prompt["max_text_tokens"] == 96
    )  # inference truncates the same way
    # Each evaluation logged the policy metric from the scoring pass.
    evals = [h for h in result.log_history if "eval_loss" in h]
    assert evals and all(k in evals[0] for k in ("eval_pr_auc", "eval_roc_auc", "eval_macro_f1", "eval_ece"))
    summary = json.loads((final / "training_summary.json").read_text())
    assert summary["base_model"] == str(out / "tiny-model") and (out / "tiny-model" / "config.json").is_file()
    assert summary["eval_rows"] == 12 and "baseline" in summary["notes"][0]
    assert summary["temperature"] == pytest.approx(
        json.loads((final / "calibration.json").read_text())["temperature"]
    )
    policy = json.loads((final / "policy.json").read_text())
    assert 0 <= policy["review"] <= policy["demote"] <= 1

    # The model card is written by training and carries the measured validation values.
    from huggingface_hub import ModelCard

    from hf_spamguard.cards import format_value

    card = ModelCard.load(final / "README.md")
    measured = summary["eval_metrics"]
    assert measured == result.eval_metrics and {"macro_f1", "pr_auc"} <= set(measured)
    for key in ("macro_f1", "pr_auc", "roc_auc"):
        assert f"| {key} | {format_value(measured[key])} |" in card.text, key
    index = {r.metric_type: r for r in card.data.eval_results}
    assert index["macro_f1"].metric_value == pytest.approx(measured["macro_f1"], abs=1e-4)
    assert index["pr_auc"].dataset_split == "validation"
    assert card.data.library_name == "transformers" and "lora" not in card.data.tags  # merged weights
    assert f"| `demote` | {format_value(float(policy['demote']))} |" in card.text  # the selected policy
    assert card.data.model_name == out.name  # named after the run, not "final"

    from transformers import pipeline

    import hf_spamguard  # noqa: F401  registers the task
    from hf_spamguard.verdict import validate_verdict

    pipe = pipeline("listing-spam", model=str(final), trust_remote_code=True)
    verdicts = pipe(
        [
            "Levi's 501 jeans, size 32. tags: nike adidas gucci prada",
            {"text": "Blue wool jumper", "image": None},
        ],
        max_reason_tokens=4,
    )
    assert len(verdicts) == 2
    for verdict in verdicts:
        validate_verdict(verdict)
        assert verdict["decision"] in ("keep", "review", "demote")


def test_resume_from_last_checkpoint(lora_run, tiny_model_dir: Path, demo_dataset_dir: Path) -> None:
    out, _ = lora_run
    assert (out / "checkpoint-2").is_dir()
    result = _run(
        _args(
            tiny_model_dir,
            demo_dataset_dir,
            out,
            "--model_name_or_path",
            str(out / "tiny-model"),
            "--max_steps",
            "3",
            "--resume_from_checkpoint",
            "last",
            "--eval_split",
            "none",
            "--final_dir",
            str(out / "resumed"),
        )  # fmt: skip
    )
    assert result.global_step == 3
    assert any("resumed from" in n and "checkpoint-2" in n for n in result.notes)
    # Only one optimiser step was run after the resume.
    assert [h["step"] for h in result.log_history if "loss" in h] == [1, 2, 3]


def test_qlora_4bit_on_cpu_learns_and_the_adapter_folder_loads(
    tiny_model_dir: Path, demo_dataset_dir: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    result = _run(
        _args(
            tiny_model_dir,
            demo_dataset_dir,
            tmp_path,
            "--load_in_4bit",
            "true",
            "--max_steps",
            "3",
            "--eval_split",
            "none",
            "--save_strategy",
            "no",
            "--load_best_model_at_end",
            "false",
            "--merge",
            "false",
        )  # fmt: skip
    )
    final = result.final_dir
    summary = json.loads((final / "training_summary.json").read_text())
    assert summary["quantized"] is True and any("4-bit" in n for n in summary["notes"])
    assert result.temperature == 1.0  # no evaluation split: no calibration
    # LoRA B matrices start at zero: non-zero after training means the 4-bit model did learn.
    adapter = load_file(str(final / "adapter_model.safetensors"))
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and max(float(v.abs().max()) for v in lora_b) > 0
    # An adapter-only folder (--merge false): no config.json, base recorded as an absolute path, and it
    # loads through the registered task with its calibration and policy.
    assert not (final / "config.json").exists() and (final / "policy.json").is_file()
    base = json.loads((final / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert Path(base).is_absolute() and Path(base) == tiny_model_dir.resolve()
    card = (final / "README.md").read_text()
    assert "library_name: peft" in card and "No evaluation results were recorded" in card

    from transformers import pipeline

    import hf_spamguard  # noqa: F401  registers the task
    from hf_spamguard.verdict import validate_verdict

    pipe = pipeline("listing-spam", model=str(final), model_dir=str(final))
    verdict = pipe("Blue wool jumper, size M", reason=False)
    validate_verdict(verdict)
    assert "decision" in verdict


def test_early_stopping_tensorboard_and_best_checkpoint(
    tiny_model_dir: Path, demo_dataset_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)  # the events must land in output_dir
    # learning_rate 0 keeps the weights, hence eval_pr_auc, identical at every evaluation: the second one
    # is then deterministically "no improvement", so patience 1 must stop the run at step 2 of 6 with
    # checkpoint-1 as the best. (With a real learning rate the tiny random model's pr_auc wanders, and
    # whether and when it stops would depend on the platform's float rounding.)
    result = _run(
        _args(
            tiny_model_dir, demo_dataset_dir, tmp_path,
            "--learning_rate", "0", "--max_steps", "6", "--eval_steps", "1", "--save_steps", "1",
            "--early_stopping_patience", "1", "--report_to", "tensorboard", "--merge", "false",
            "--calibrate", "false",
        )
    )  # fmt: skip
    assert result.global_step == 2, "EarlyStoppingCallback did not stop the run"
    assert any("early stopping after 1 evaluation(s)" in n and "eval_pr_auc" in n for n in result.notes)
    summary = json.loads((result.final_dir / "training_summary.json").read_text())
    assert Path(summary["best_checkpoint"]) == tmp_path / "checkpoint-1"
    # The best checkpoint survives save_total_limit (1): it is the checkpoint load_best_model_at_end loaded.
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-1"]
    assert (tmp_path / "checkpoint-1" / "adapter_model.safetensors").is_file()
    first_eval = next(h for h in result.log_history if "eval_pr_auc" in h)
    assert first_eval["step"] == 1 and summary["best_metric"] == pytest.approx(first_eval["eval_pr_auc"])

    events = list(tmp_path.glob("runs/*/events.out.tfevents.*"))
    assert events, f"no TensorBoard event file under {tmp_path / 'runs'}"
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "eval/loss", "eval/pr_auc", "eval/roc_auc"} <= tags, tags
    assert [e.step for e in acc.Scalars("eval/pr_auc")] == [1, 2]


def test_unsloth_on_cpu_fails_fast_with_a_clear_message(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hf_spamguard.cli import app

    res = CliRunner().invoke(
        app, ["train", "--config", str(TINY), "--backend", "unsloth", "--output_dir", str(tmp_path / "out")]
    )
    assert res.exit_code == 1
    assert "Unsloth cannot run vision models on CPU" in res.output
    assert not (tmp_path / "out").exists()  # nothing was loaded or written


def test_cli_train_reports_a_missing_dataset(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hf_spamguard.cli import app

    res = CliRunner().invoke(
        app,
        [
            "train",
            "--config",
            str(TINY),
            "--dataset",
            str(tmp_path / "nope"),
            "--output_dir",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 1
    assert "Error:" in res.output and "nope" in res.output
    assert "Traceback" not in res.output


def test_accelerate_launch_two_cpu_processes(
    tiny_model_dir: Path, demo_dataset_dir: Path, tmp_path: Path
) -> None:
    # `accelerate launch --cpu` starts ONE process unless MPI is set up (accelerate 1.15's CPU launcher);
    # `--multi_gpu` goes through torchrun, and without CUDA torch.distributed runs on gloo: two real
    # CPU processes with DDP. The training arguments still say use_cpu (tiny-cpu.yaml).
    import socket

    with socket.socket() as sock:  # a free port: other jobs may hold torchrun's default 29500
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(port),
        str(REPO / "scripts" / "train.py"),
        *_args(tiny_model_dir, demo_dataset_dir, out, "--max_steps", "2", "--eval_steps", "2", "--save_steps", "2"),
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr[-4000:]
    # Exactly one model folder, written by the main process only.
    folders = [p.parent for p in out.rglob("policy.json")]
    assert folders == [out / "final"]
    assert res.stdout.count("model folder:") == 1
    # No library noise from accelerate launch either (issue #12.11).
    assert "is_gradient_checkpointing" not in res.stderr and "gemm_4bit_forward" not in res.stderr
    summary = json.loads((out / "final" / "training_summary.json").read_text())
    assert summary["num_processes"] == 2 and summary["global_step"] == 2
    assert summary["distributed_backend"] == "gloo"


@pytest.mark.parametrize(
    "config,extra,named",
    [
        ({"loss_type": "dft"}, {}, "loss_type='dft'"),
        ({"label_smoothing_factor": 0.1}, {}, "label_smoothing_factor=0.1"),
        (
            {},
            {"compute_loss_func": lambda outputs, labels, num_items_in_batch=None: 0.0},
            "compute_loss_func",
        ),
    ],
)
def test_trainer_refuses_losses_it_would_silently_replace(tmp_path: Path, config, extra, named) -> None:
    # The weighted NLL replaces TRL's loss computation: another loss must be an error, not ignored.
    from trl import SFTConfig

    from hf_spamguard.training.trainer import SpamGuardSFTTrainer

    args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", **config)
    with pytest.raises(ValueError, match=named.replace("(", r"\(")):
        SpamGuardSFTTrainer(model="unused: refused before loading", args=args, **extra)


# --------------------------------------------------------------------------------------------------
# What a person sees (issue #12): the shipped config from a fresh clone, help, the closing summary
# --------------------------------------------------------------------------------------------------
def test_tiny_cpu_config_runs_as_shipped_from_a_fresh_clone(tmp_path: Path) -> None:
    """`spamguard train --config scripts/configs/tiny-cpu.yaml` in an empty folder: it builds its demo
    dataset and its tiny model on first use (saying so), trains, and ends with a short summary that says
    which policy targets were missed; no raw dicts, no library noise."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [
        sys.executable, "-m", "hf_spamguard", "train", "--config", str(TINY),
        "--max_steps", "1", "--max_train_samples", "8", "--max_eval_samples", "16", "--disable_tqdm", "true",
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=str(tmp_path))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    out = res.stdout
    assert "building the synthetic demo dataset in outputs/demo-listings" in out
    assert "building the tiny random Qwen3-VL in outputs/tiny-qwen3-vl" in out
    assert "fitting the TF-IDF baseline" in out
    assert (tmp_path / "outputs" / "demo-listings" / "data").is_dir()
    final = tmp_path / "outputs" / "tiny-cpu-spamguard" / "final"
    assert "model folder: outputs/tiny-cpu-spamguard/final" in out and (final / "policy.json").is_file()
    summary = json.loads((final / "training_summary.json").read_text())
    policy = summary["policy"]
    # The closing lines: rounded thresholds, and the targets verdict on screen, not only in the file.
    assert f"review ≥ {policy['review']:.3f}, demote ≥ {policy['demote']:.3f}" in out
    assert "thresholds {" not in out and "validation {" not in out
    if not policy["targets_met"]:
        assert "Policy targets NOT met:" in out and policy["notes"][0] in out
    fit = summary["temperature_fit"]
    assert fit["bounds"] == [0.05, 20.0] and fit["at_bound"] == (fit["note"] is not None)
    if fit["at_bound"]:
        assert f"Note: {fit['note']}" in out
    assert "is_gradient_checkpointing" not in res.stderr and "gemm_4bit_forward" not in res.stderr
    # The second run finds both and builds nothing.
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr[-4000:]
    assert "building the" not in res.stdout


def test_demo_dataset_is_built_only_for_its_own_folder(tmp_path: Path) -> None:
    from hf_spamguard.training.args import ProjectArgs
    from hf_spamguard.training.run import ensure_demo_dataset

    class _Args:
        from contextlib import nullcontext

        def main_process_first(self, **_):
            return self.nullcontext()

    other = ProjectArgs(dataset=str(tmp_path / "my-data"), demo_dataset_dir=str(tmp_path / "demo"))
    assert not ensure_demo_dataset(other, _Args()) and not (tmp_path / "my-data").exists()
    assert not (tmp_path / "demo").exists()


def test_train_help_is_short_and_help_all_is_complete() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    short = subprocess.run(
        [sys.executable, "-m", "hf_spamguard", "train", "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    full = subprocess.run(
        [sys.executable, "-m", "hf_spamguard", "train", "--help-all"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert short.returncode == 0 and full.returncode == 0, short.stderr[-2000:] + full.stderr[-2000:]
    assert short.stdout.startswith("usage: spamguard train --config FILE.yaml")
    for needed in ("--config FILE.yaml", "--help-all", "--dataset", "--demo_dataset_dir", "--model_name_or_path",
                   "--max_steps", "--learning_rate", "--output_dir", "--lora_r"):  # fmt: skip
        assert needed in short.stdout, needed
    assert "--adam_beta1" not in short.stdout and "--adam_beta1" in full.stdout
    assert len(short.stdout.splitlines()) < 150 < len(full.stdout.splitlines())
    assert "--max-steps" not in short.stdout  # one spelling per option
    from hf_spamguard.training.console import format_help

    assert format_help(prog="scripts/train.py").startswith("usage: scripts/train.py --config FILE.yaml")


def test_config_given_with_an_equals_sign() -> None:
    from hf_spamguard.training.run import parse_args

    project, sft, _ = parse_args([f"--config={TINY}", "--max_steps", "3"], cuda=False)
    assert project.demo_dataset_dir == "outputs/demo-listings" and sft.max_steps == 3


def test_portable_base_names(tmp_path: Path) -> None:
    from hf_spamguard.modeling import portable_base_name

    snapshot = tmp_path / "hub" / "models--Qwen--Qwen3-VL-2B-Instruct" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    assert portable_base_name(snapshot) == ("Qwen/Qwen3-VL-2B-Instruct", "Hub id of the cache snapshot")
    local = tmp_path / "models" / "my-base"
    local.mkdir(parents=True)
    assert portable_base_name(local)[0] == "my-base"
    assert portable_base_name(local, "org/base")[0] == "org/base"
    assert portable_base_name("Qwen/Qwen3-VL-2B-Instruct")[0] == "Qwen/Qwen3-VL-2B-Instruct"
