"""Generate the tutorial notebooks from this one file: `python notebooks/_build.py`.

The notebooks are committed without outputs; tests/test_notebooks.py executes them and checks
that the committed files are exactly what this script writes (`python notebooks/_build.py --check`).
Edit the cells here, never the .ipynb files.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
NOTEBOOKS: dict[str, list[tuple[str, str]]] = {}


def md(text: str) -> tuple[str, str]:
    return "markdown", textwrap.dedent(text).strip("\n")


def code(text: str) -> tuple[str, str]:
    return "code", textwrap.dedent(text).strip("\n")


SETUP_NOTE = md(
    """
    `FAST` is set when the environment variable `DELORA_VIZ_FAST=1` (the tests set it): fewer steps
    and smaller sizes, so the notebook runs in CI in seconds. Leave it unset for the real picture.
    `%matplotlib inline` lets Jupyter draw the `matplotlib.figure.Figure` objects that
    `delora_viz.plots.figures` returns (they never touch pyplot's global state).
    """
)


# ============================================================================ 01
NOTEBOOKS["01_delora_from_scratch"] = [
    md(
        r"""
        # 01 · DeLoRA from scratch

        **What you will learn**

        1. DeLoRA's update $\Delta W = \frac{\lambda}{r} B\,\Xi\,A\,\mathrm{diag}(w)$, term by term, on a
           `DeLoRALinear` you can poke at.
        2. Why normalising the inner $r$-dimensional space makes $\lambda$ alone set the strength.
        3. The bound $\|\Delta W\|_F \le |\lambda| \max_j \|W_{:,j}\|$, checked on random and adversarial factors.
        4. The two initialisations side by side over the first training steps: PEFT's one-step jump
           versus the paper's smooth start.
        5. That our layer *is* PEFT's `DeloraLinear`: same update, outputs, gradients, training
           trajectory and adapter files.

        **Time:** about half a minute in fast mode, a minute or two in full mode, on 2 CPU cores.
        No GPU, no download. Every claim below is checked by an `assert` in a cell.
        """
    ),
    SETUP_NOTE,
    code(
        """
        %matplotlib inline
        import copy
        import os
        import tempfile

        import pandas as pd
        import torch
        from torch import nn

        from delora_viz import (DeLoRALinear, Tracker, add_delora, delora_layers, delora_parameters,
                                load_peft_delora, save_peft_delora, singular_values)
        from delora_viz import plots

        FAST = os.environ.get("DELORA_VIZ_FAST") == "1"
        _ = torch.manual_seed(0)
        """
    ),
    md(
        r"""
        ## 1. The equation, term by term

        DeLoRA adapts a frozen weight $W$ ($m \times n$ = out × in, the `nn.Linear` layout) with

        $$\Delta W = \frac{\lambda}{r}\; B\; \Xi\; A\; \mathrm{diag}(w), \qquad
          \Xi = \mathrm{diag}\Big(\frac{1}{\|b_i\|\,\|a_i\|}\Big), \qquad w_j = \|W_{:,j}\|$$

        | term | shape | what it is |
        |---|---|---|
        | $A$ | $r \times n$ | trainable; $a_i$ is row $i$ |
        | $B$ | $m \times r$ | trainable; $b_i$ is column $i$ |
        | $\Xi$ | $r \times r$ | divides each rank-one term $b_i a_i^\top$ by its own size |
        | $\lambda$ | scalar | trainable strength, one per layer |
        | $w$ | $n$ | column norms of the frozen $W$, computed once and frozen |

        and the layer computes $y = x W^\top + b + x\,\Delta W^\top$. PEFT's initialisation puts
        $A$ at kaiming-uniform and $B = 0$, so $\Delta W = 0$ at the start.
        """
    ),
    code(
        """
        base = nn.Linear(64, 48)  # n = 64 inputs, m = 48 outputs
        layer = DeLoRALinear(base, r=4, delora_lambda=2.0, init="peft")
        print(layer)
        print("||dW||_F at init:", layer.delta_weight().norm().item())
        assert layer.delta_weight().abs().max().item() == 0.0  # B = 0: the update starts at zero

        with torch.no_grad():
            layer.delora_B.normal_()  # pretend some training happened, so there is something to look at
        """
    ),
    md("Now the same update by hand, one term at a time, and checked against the layer:"),
    code(
        """
        W = layer.weight.detach()  # (m, n) frozen
        A = layer.delora_A.detach()  # (r, n)
        B = layer.delora_B.detach()  # (m, r)
        lam = layer.delora_lambda.detach()  # (1,)
        r = A.shape[0]

        w = W.norm(dim=0)  # (n,)  column norms ||W[:, j]||
        Xi = torch.diag(1 / (B.norm(dim=0) * A.norm(dim=1)))  # (r, r)  1 / (||b_i|| ||a_i||)
        dW_by_hand = (lam / r) * B @ Xi @ A @ torch.diag(w)  # (m, n)

        torch.testing.assert_close(w, layer.delora_w_norm)  # the frozen column norms
        torch.testing.assert_close(dW_by_hand, layer.delta_weight())  # the layer's update

        x = torch.randn(5, 64)
        torch.testing.assert_close(layer(x), x @ (W + dW_by_hand).T + base.bias)  # the forward pass

        update = layer.update()  # the same dW as thin factors U (m, k), V (n, k): dW = U V^T
        torch.testing.assert_close(update.U @ update.V.T, dW_by_hand)
        assert torch.linalg.matrix_rank(dW_by_hand).item() <= r  # a rank-r update
        print("U", tuple(update.U.shape), "V", tuple(update.V.shape), "rank(dW) =", torch.linalg.matrix_rank(dW_by_hand).item())
        """
    ),
    md(
        r"""
        ## 2. The normalisation of the inner space

        Each rank-one term $\frac{b_i}{\|b_i\|} \frac{a_i^\top}{\|a_i\|}$ is an outer product of two unit
        vectors, so its Frobenius norm is exactly 1 whatever $A$ and $B$ are. Rescaling a row of $A$ or
        a column of $B$ changes nothing: the factors carry only *directions*, and the *strength* lives in
        $\lambda$ (doubling $\lambda$ doubles $\Delta W$). A gradient step on $A$ or $B$ can only turn the
        update; this is the decoupling of angle and strength in the paper's title.

        (PEFT clamps each norm at $10^{-4}$ before dividing, so $B = 0$ does not divide by zero; a column of
        $B$ shorter than $10^{-4}$ gives a term shorter than 1.)
        """
    ),
    code(
        """
        rescaled = copy.deepcopy(layer)
        with torch.no_grad():
            rescaled.delora_A.mul_(torch.tensor([[0.01], [1.0], [7.0], [300.0]]))  # one factor per row of A
            rescaled.delora_B.mul_(torch.tensor([[5.0, 0.2, 1.0, 40.0]]))  # one factor per column of B
        torch.testing.assert_close(rescaled.delta_weight(), layer.delta_weight())  # nothing changed

        doubled = copy.deepcopy(layer)
        with torch.no_grad():
            doubled.delora_lambda.mul_(2)
        torch.testing.assert_close(doubled.delta_weight(), 2 * layer.delta_weight())  # lambda is the strength

        for i in range(r):  # every normalised rank-one term has unit Frobenius norm
            term = torch.outer(B[:, i] / B[:, i].norm(), A[i] / A[i].norm())
            assert abs(term.norm().item() - 1.0) < 1e-5
        print("rescaling A and B: no change; doubling lambda: twice the update; each term has norm 1")
        """
    ),
    md(
        r"""
        ## 3. The bound, checked empirically

        Write $\hat a_i = a_i / \|a_i\|$ and $\hat b_i = b_i / \|b_i\|$. Then
        $\Delta W = \frac{\lambda}{r}\sum_i \hat b_i\,(\hat a_i \odot w)^\top$ and the triangle inequality gives

        $$\|\Delta W\|_F \;\le\; \frac{|\lambda|}{r}\sum_{i=1}^r \|\hat a_i \odot w\|
                        \;\le\; |\lambda| \max_j \|W_{:,j}\|.$$

        The middle term is `layer.bound()`, tight for the current directions of $A$ (an equality when
        $r = 1$); the right one is
        `layer.bound_loose()`, which holds whatever $A$ and $B$ are. So no learning rate and no number of
        steps can push $\Delta W$ past it: only $\lambda$ moves it.

        **Random factors.** A weight with uneven column norms (so the two bounds differ), random ranks,
        random $\lambda$, and factors at wildly different scales:
        """
    ),
    code(
        """
        torch.manual_seed(0)
        uneven = nn.Linear(64, 48)
        with torch.no_grad():
            uneven.weight.mul_(torch.logspace(-1, 0.5, 64))  # column norms spread over ~30x
        w_uneven = uneven.weight.detach().norm(dim=0)

        records = []
        for trial in range(300 if FAST else 3000):
            rank = int(torch.randint(1, 9, ()))
            lam_t = float(torch.empty(()).uniform_(0.1, 5.0))
            probe = DeLoRALinear(copy.deepcopy(uneven), r=rank, delora_lambda=lam_t)
            with torch.no_grad():
                probe.delora_A.normal_().mul_(10 ** torch.empty(rank, 1).uniform_(-3, 3))  # any scale
                probe.delora_B.normal_().mul_(10 ** torch.empty(1, rank).uniform_(-3, 3))
            norm = probe.delta_weight().norm().item()
            records.append(dict(rank=rank, norm=norm, tight=norm / probe.bound().item(),
                                loose=norm / probe.bound_loose().item(),
                                typical=norm / (lam_t * w_uneven.pow(2).mean().sqrt().item() / rank**0.5)))
        random_cases = pd.DataFrame(records)
        print(random_cases[["tight", "loose", "typical"]].describe().loc[["mean", "50%", "max"]].round(3))

        assert random_cases["tight"].max() <= 1 + 1e-5  # ||dW|| <= bound(), every time
        assert (random_cases.query("rank == 1")["tight"] > 1 - 1e-5).all()  # with r = 1 it is an equality
        assert random_cases["loose"].max() <= 1 + 1e-5  # <= |lambda| max_j ||W[:, j]||, every time
        assert random_cases["loose"].median() < 0.5  # random directions stay far below the worst case
        assert 0.5 < random_cases["typical"].median() < 2  # typical size: |lambda| rms(w) / sqrt(r)
        """
    ),
    md(
        r"""
        Random directions sit well below the worst case: their typical size is
        $|\lambda|\,\mathrm{rms}(w)/\sqrt r$ (the rank-one terms point in nearly orthogonal directions and
        add like a random walk). **Adversarial factors** reach the bound. Point every row of $A$ at the
        column with the largest norm and make every column of $B$ the same vector: all $r$ terms align and
        add up to exactly $|\lambda| \max_j w_j$.
        """
    ),
    code(
        """
        worst = DeLoRALinear(copy.deepcopy(uneven), r=4, delora_lambda=2.0)
        j_star = int(w_uneven.argmax())
        with torch.no_grad():
            worst.delora_A.zero_()
            worst.delora_A[:, j_star] = 1.0  # every a_i = e_{j*}
            worst.delora_B.copy_(torch.randn(48, 1).expand(48, 4))  # every b_i the same
        ratio = (worst.delta_weight().norm() / worst.bound_loose()).item()
        print(f"constructed worst case: ||dW|| / bound_loose = {ratio:.7f}")
        assert abs(ratio - 1) < 1e-5  # the bound is attained: it cannot be improved
        """
    ),
    md(
        r"""
        Gradient *ascent* on $\|\Delta W\|_F^2$ over $A$ and $B$ (with $\lambda$ fixed), at a large
        learning rate, finds the same ceiling and never crosses it:
        """
    ),
    code(
        """
        torch.manual_seed(0)
        climber = DeLoRALinear(copy.deepcopy(uneven), r=4, delora_lambda=2.0)
        with torch.no_grad():
            climber.delora_B.normal_()  # start anywhere but B = 0 (where the gradient of ||dW||^2 is zero)
        opt = torch.optim.Adam([climber.delora_A, climber.delora_B], lr=0.3)
        best = 0.0
        for _ in range(150 if FAST else 400):
            opt.zero_grad()
            (-climber.delta_weight().pow(2).sum()).backward()  # maximise ||dW||_F^2
            opt.step()
            ratio = (climber.delta_weight().norm() / climber.bound_loose()).item()
            assert ratio <= 1 + 1e-5  # never above the bound
            best = max(best, ratio)
        print(f"gradient ascent: best ||dW|| / bound_loose = {best:.5f}")
        assert best > 0.99  # it climbs all the way to the ceiling
        """
    ),
    md(
        r"""
        ## 4. Two initialisations over the first training steps

        Both start at $\Delta W = 0$, differently:

        * **PEFT** (`init="peft"`, PEFT's `DeloraConfig`): $A$ kaiming-uniform, $B = 0$.
        * **Paper** (`init="paper"`, Eq. 5-9): $A$ and $B$ both kaiming-uniform, and a frozen copy
          $(A_0, B_0)$ of them subtracted: $\Delta W = \frac{\lambda}{r}(B\,\Xi A - B_0\,\Xi_0 A_0)\,\mathrm{diag}(w)$.
          (The authors' code let the frozen copy share storage with the trained factors, which keeps
          $\Delta W = 0$ for ever on CPU; `DeLoRALinear` clones it.)

        With $B = 0$ the normalisation has nothing to normalise, until the first optimizer step gives each
        column of $B$ *some* direction. Then $\Xi$ divides its size away, and every rank-one term has its
        full unit size at once: PEFT's update **jumps** to about $|\lambda|\,\mathrm{rms}(w)/\sqrt r$ after
        one step, *whatever the learning rate*. With the paper's init, $B$ and $B_0$ start equal and part
        slowly, so $\Delta W$ grows in proportion to the learning rate.

        A small student-teacher task: a two-layer MLP learns to imitate a perturbed copy of itself.
        """
    ),
    code(
        """
        torch.manual_seed(0)
        student = nn.Sequential(nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 8))
        teacher = copy.deepcopy(student)
        with torch.no_grad():
            for p in teacher.parameters():
                p.add_(0.1 * torch.randn_like(p))
        X = torch.randn(512, 64)
        Y = teacher(X).detach()  # the targets


        def run(init, lr, steps, lam=1.0):
            \"\"\"Fit the student with DeLoRA on both layers; return the tracker's rows.\"\"\"
            torch.manual_seed(1)
            model = add_delora(copy.deepcopy(student), ["0", "2"], r=4, delora_lambda=lam, init=init)
            opt = torch.optim.AdamW(delora_parameters(model), lr=lr)
            batches = torch.Generator().manual_seed(0)
            with Tracker(model).watch(opt) as tracker:  # records after every opt.step()
                tracker.step(0)  # the starting point, dW = 0
                for _ in range(steps):
                    idx = torch.randint(0, len(X), (32,), generator=batches)
                    loss = (model(X[idx]) - Y[idx]).pow(2).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            return tracker.to_dataframe().assign(run=f"{init} init, lr {lr:g}"), model
        """
    ),
    md("One step, three learning rates four orders of magnitude apart:"),
    code(
        """
        first_step = []
        for lr in (1e-5, 1e-3, 1e-1):
            for init in ("peft", "paper"):
                rows, _ = run(init, lr, steps=1)
                one = rows[rows["step"] == 1]
                typical = one["lambda"] * one["w_fro"] / (64**0.5 * 4**0.5)  # |lambda| rms(w) / sqrt(r), n = 64, r = 4
                first_step.append(dict(init=init, lr=lr, delta_fro=one["delta_fro"].mean(),
                                       of_bound_loose=(one["delta_fro"] / one["bound_loose"]).mean(),
                                       of_typical=(one["delta_fro"] / typical).mean()))
        first_step = pd.DataFrame(first_step)
        print(first_step.to_string(index=False, float_format="%.3g"))

        jump = first_step.pivot(index="lr", columns="init", values="delta_fro")
        assert jump["peft"].max() / jump["peft"].min() < 2  # PEFT: about the same size at any lr
        assert jump["paper"].max() / jump["paper"].min() > 1000  # paper: proportional to the lr
        assert (jump["peft"] / jump["paper"]).loc[1e-5] > 1000  # at a small lr, PEFT is >1000x further
        peft_typical = first_step.query("init == 'peft' and lr >= 1e-3")["of_typical"]
        assert peft_typical.between(0.5, 2).all()  # about |lambda| rms(w) / sqrt(r) after one step
        """
    ),
    md(
        r"""
        PEFT's first step lands at the same size for $10^{-5}$ and $10^{-1}$ (a bit smaller at
        $10^{-5}$, where Adam's step of about `lr` per entry leaves $\|b_i\|$ under the $10^{-4}$ clamp),
        while the paper's first step scales with the learning rate. Over more steps at a moderate rate:
        """
    ),
    code(
        """
        STEPS = 20 if FAST else 100
        peft_rows, peft_model = run("peft", 1e-3, STEPS)
        paper_rows, paper_model = run("paper", 1e-3, STEPS)
        both = pd.concat([peft_rows, paper_rows], ignore_index=True)

        for rows in (peft_rows, paper_rows):
            assert (rows["delta_fro"] <= rows["bound"] * (1 + 1e-5)).all()  # bounded at every step
        early = lambda rows: rows[rows.step == 1].delta_fro.mean() / rows[rows.step == STEPS].delta_fro.mean()
        print(f"size after step 1 / size after step {STEPS}: PEFT init {early(peft_rows):.2f}, paper init {early(paper_rows):.3f}")
        assert early(peft_rows) > 0.5 and early(paper_rows) < 0.2  # PEFT arrives at once, the paper grows
        plots.plot_update_norm(both, show_worst_layer=False)
        """
    ),
    md(
        r"""
        The paper's update is the difference of two rank-$r$ terms, so it has rank up to $2r$, where
        PEFT's has rank $r$ (that is also why `save_peft_lora` exports it as a rank-$2r$ LoRA adapter):
        """
    ),
    code(
        """
        svals = {"delora (PEFT init)": singular_values(peft_model[0].update()).detach(),
                 "delora-paper (paper init)": singular_values(paper_model[0].update()).detach()}
        numerical_rank = {k: int((s > 1e-5 * s[0]).sum()) for k, s in svals.items()}
        print("numerical rank of dW in the first layer:", numerical_rank)
        assert numerical_rank["delora (PEFT init)"] <= 4 < numerical_rank["delora-paper (paper init)"] <= 8
        plots.plot_singular_values(svals)
        """
    ),
    md(
        r"""
        ## 5. Parity with PEFT's layer

        `DeLoRALinear(init="peft")` is meant to be PEFT's `DeloraLinear`, written once. The check: copy our
        factors into a PEFT model, compare the update, the outputs and the gradients in float64; train both
        for a few steps on the same batches and compare again; and exchange adapter directories both ways.
        """
    ),
    code(
        """
        from peft import DeloraConfig, PeftModel, get_peft_model

        torch.manual_seed(0)
        plain = nn.Sequential(nn.Linear(24, 16), nn.GELU(), nn.Linear(16, 5)).double()
        ours = add_delora(copy.deepcopy(plain), ["0", "2"], r=4, delora_lambda=3.0)
        theirs = get_peft_model(copy.deepcopy(plain), DeloraConfig(r=4, delora_lambda=3.0, target_modules=["0", "2"])).double()
        for name, mine in delora_layers(ours).items():
            peft_layer = theirs.base_model.model.get_submodule(name)
            with torch.no_grad():
                mine.delora_B.normal_()  # a non-trivial update
                for key in ("delora_A", "delora_B", "delora_lambda"):
                    getattr(peft_layer, key)["default"].copy_(getattr(mine, key))
            assert torch.equal(peft_layer.delora_w_norm["default"], mine.delora_w_norm)  # same frozen norms
            torch.testing.assert_close(peft_layer.get_delta_weight("default"), mine.delta_weight(), rtol=1e-12, atol=1e-14)

        x = torch.randn(16, 24, dtype=torch.float64)
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-12, atol=1e-14)  # same outputs

        opt_ours = torch.optim.AdamW(delora_parameters(ours), lr=1e-2)
        opt_theirs = torch.optim.AdamW([p for p in theirs.parameters() if p.requires_grad], lr=1e-2)
        for step in range(5):  # same batches, same optimizer: same trajectory
            xb = torch.randn(16, 24, dtype=torch.float64)
            for model, opt in ((ours, opt_ours), (theirs, opt_theirs)):
                opt.zero_grad()
                model(xb).pow(2).sum().backward()
                opt.step()
        for name, mine in delora_layers(ours).items():
            peft_layer = theirs.base_model.model.get_submodule(name)
            for key in ("delora_A", "delora_B", "delora_lambda"):
                torch.testing.assert_close(getattr(peft_layer, key)["default"], getattr(mine, key), rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-9, atol=1e-11)
        print("update, outputs and 5 training steps agree with PEFT's DeloraLinear (float64)")
        """
    ),
    code(
        """
        with tempfile.TemporaryDirectory() as tmp:
            save_peft_delora(ours, f"{tmp}/ours")  # our layers -> a PEFT DeLoRA adapter directory
            reloaded = PeftModel.from_pretrained(copy.deepcopy(plain), f"{tmp}/ours")
            torch.testing.assert_close(reloaded(x), ours(x), rtol=1e-12, atol=1e-14)

            theirs.save_pretrained(f"{tmp}/theirs")  # PEFT's adapter -> our layers
            back = load_peft_delora(copy.deepcopy(plain), f"{tmp}/theirs")
            torch.testing.assert_close(back(x), theirs(x), rtol=1e-12, atol=1e-14)
        print("adapter files round-trip both ways: PeftModel.from_pretrained and load_peft_delora")
        """
    ),
    md(
        """
        **Where next:** `02_geometry_of_an_update.ipynb` measures these updates (norms, angles, singular
        values) without ever building the $m \\times n$ matrix, and compares them with LoRA's and DoRA's.
        """
    ),
]


# ============================================================================ 02
NOTEBOOKS["02_geometry_of_an_update"] = [
    md(
        r"""
        # 02 · The geometry of an update

        **What you will learn**

        1. How big LoRA, DoRA and DeLoRA updates get, and which way they point, on one real pretrained
           layer (the query projection of all-MiniLM-L6-v2's first block, 384 × 384).
        2. Why the closed forms in `delora_viz.core.geometry` give the same numbers as the dense matrices, and
           what they save (timed here on a 4096 × 4096 layer).
        3. Why angles are computed with `atan2` rather than `arccos`.
        4. The angle-vs-strength picture: every method's update is nearly orthogonal to $W$; what
           differs is how far it may go.

        **Time:** under a minute in fast mode, about two minutes in full mode, on 2 CPU cores.
        """
    ),
    SETUP_NOTE,
    code(
        """
        %matplotlib inline
        import copy
        import math
        import os
        import time
        from collections import OrderedDict

        import pandas as pd
        import torch
        from torch import nn

        from delora_viz import LowRankUpdate, Tracker, find_adapters, singular_values, update_geometry
        from delora_viz import plots
        from delora_viz.core.geometry import DoraUpdate, dense_geometry, dora_update_stats, fro_norm
        from delora_viz.training.methods import METHODS, build_adapted_model
        from delora_viz.training.models import load_model

        FAST = os.environ.get("DELORA_VIZ_FAST") == "1"
        _ = torch.manual_seed(0)
        """
    ),
    md(
        r"""
        ## 1. Three updates on one layer

        We take one pretrained weight $W$ and let each method fit the same small task: reproduce the
        layer's outputs after a random rank-4 change $E$ of 10% of $\|W\|_F$. Each method runs through PEFT
        (`build_adapted_model` builds the `LoraConfig` / `DeloraConfig`) at its recommended learning rate,
        rank 8, and DeLoRA's $\lambda = 5$; a `Tracker` records the geometry after every step.
        """
    ),
    code(
        """
        minilm = load_model("minilm")
        query = minilm.model.get_submodule("bert.encoder.layer.0.attention.self.query")
        W = query.weight.detach().clone()  # (384, 384), frozen
        m, n = W.shape

        E = torch.randn(m, 4) @ torch.randn(4, n)
        E = E / E.norm() * 0.1 * W.norm()  # the change to learn: rank 4, 10% of ||W||_F
        X = 0.5 * torch.randn(2048, n)
        Y = X @ (W + E).T + query.bias.detach()
        STEPS = 40 if FAST else 200


        def fit(method):
            \"\"\"Adapt a copy of the layer with `method` and fit the target; return (model, tracker rows).\"\"\"
            torch.manual_seed(0)
            one_layer = nn.Sequential(OrderedDict(proj=copy.deepcopy(query)))
            model = build_adapted_model(one_layer, method, ["proj"], r=8, delora_lambda=5.0)
            opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=METHODS[method].default_lr)
            batches = torch.Generator().manual_seed(0)
            with Tracker(model).watch(opt) as tracker:
                tracker.step(0)
                for _ in range(STEPS):
                    idx = torch.randint(0, len(X), (64,), generator=batches)
                    loss = (model(X[idx]) - Y[idx]).pow(2).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            return model, tracker.to_dataframe()


        models, frames = {}, {}
        for method in ("lora", "dora", "delora"):
            models[method], frames[method] = fit(method)
        history = pd.concat(frames.values(), ignore_index=True)
        last = history[history["step"] == STEPS].set_index("method")
        print(f"||E||_F = {E.norm():.3f}   ||W||_F = {W.norm():.3f}")
        last[["delta_fro", "rel_delta", "angle_delta_w_deg", "angle_w_prime_deg", "bound", "lambda"]].round(3)
        """
    ),
    md(
        """
        DeLoRA's update jumps to most of its final size at the first step (PEFT's initialisation, as in
        notebook 01), then $\\lambda$ adjusts it; LoRA's and DoRA's grow step by step from zero. Only DeLoRA
        has a bound to draw (dashed).
        """
    ),
    code(
        """
        assert (frames["delora"]["delta_fro"] <= frames["delora"]["bound"] * (1 + 1e-5)).all()  # DeLoRA: bounded
        at = lambda method, step: frames[method].set_index("step").loc[step, "delta_fro"]
        assert at("delora", 1) > 0.5 * at("delora", STEPS)  # DeLoRA (PEFT init) jumps at step 1 ...
        assert at("lora", 1) < 0.2 * at("lora", STEPS) and at("dora", 1) < 0.2 * at("dora", STEPS)  # ... the others grow
        assert last.loc[["lora", "dora"], "bound"].isna().all()  # LoRA and DoRA have no bound to report
        plots.plot_update_norm(history, show_worst_layer=False)  # one layer: the mean is the layer
        """
    ),
    md(
        r"""
        ## 2. Closed forms = dense matrices

        The tracker never builds the $m \times n$ update. LoRA's and DeLoRA's are low rank, so it keeps
        them as two thin factors $\Delta W = U V^\top$ ($k$ columns each: $U = sB,\ V = A^\top$ for LoRA;
        $U = B\,\mathrm{diag}(d),\ V = \mathrm{diag}(w) A^\top$ for DeLoRA) and uses

        $$\|\Delta W\|_F^2 = \textstyle\sum (U^\top U) \odot (V^\top V) \quad O((m+n)k^2), \qquad
          \langle \Delta W, W\rangle_F = \sum U \odot (W V) \quad O(mnk)\ \text{time},\ O((m+n)k)\ \text{memory}.$$

        With $p = \langle \Delta W, W\rangle / \|W\|$ (the part of $\Delta W$ along $W$) and
        $q = \sqrt{\|\Delta W\|^2 - p^2}$ (the part orthogonal to it):
        $\angle(\Delta W, W) = \mathrm{atan2}(q, p)$ and $\angle(W + \Delta W, W) = \mathrm{atan2}(q, \|W\| + p)$.

        DoRA rescales whole output rows, $W' = \mathrm{diag}(g)(W + sBA)$, so its update is not low rank;
        it has a per-row closed form instead (`dora_update_stats`: three row sums
        $P_k = \|W_k\|^2$, $Q_k = \langle B_k, (WA^\top)_k \rangle$, $T_k = \langle (BAA^\top)_k, B_k\rangle$).

        First the formulas by hand on DeLoRA's factors, against the dense update that PEFT itself
        produces when it merges the adapter:
        """
    ),
    code(
        """
        def dense_update(model):
            \"\"\"W' - W, with W' from PEFT merging the adapter into a copy of the layer (m x n).\"\"\"
            return copy.deepcopy(model).merge_and_unload().proj.weight.detach() - W


        U, V = (t.detach() for t in find_adapters(models["delora"])[0].update().__dict__.values())  # (m, k), (n, k)
        norm_sq = ((U.T @ U) * (V.T @ V)).sum()  # ||U V^T||_F^2 from two k x k Gram matrices
        inner = (U * (W @ V)).sum()  # <U V^T, W>_F through the thin product W V
        dW = dense_update(models["delora"])
        torch.testing.assert_close(norm_sq, dW.pow(2).sum(), rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(inner, (dW * W).sum(), rtol=1e-3, atol=1e-4)
        print(f"||dW||^2: closed form {norm_sq:.6f}, dense {dW.pow(2).sum():.6f};  <dW, W>: {inner:.6f} vs {(dW * W).sum():.6f}")
        """
    ),
    md("Then every method's tracked numbers (closed forms, float32) against dense float64 formulas:"),
    code(
        """
        def deg(x):
            return math.degrees(float(x))


        rows = []
        for method, model in models.items():
            dW = dense_update(model).double()
            W64 = W.double()
            turned = W64 + dW
            dense = dict(delta_fro=dW.norm().item(),
                         angle_delta_w_deg=deg(torch.arccos((dW * W64).sum() / (dW.norm() * W64.norm()))),
                         angle_w_prime_deg=deg(torch.arccos((turned * W64).sum() / (turned.norm() * W64.norm()))))
            for key, value in dense.items():
                rows.append(dict(method=method, metric=key, closed_form=last.loc[method, key], dense_float64=value))
        check = pd.DataFrame(rows)
        check["rel_error"] = (check["closed_form"] - check["dense_float64"]).abs() / check["dense_float64"].abs()
        assert (check["rel_error"] < 1e-4).all(), check
        check
        """
    ),
    md(
        r"""
        DoRA's per-row form against the dense matrix too, and the rank: LoRA's and DeLoRA's updates have
        at most $r = 8$ non-zero singular values (computed from the $k \times k$ core of two thin QRs), while
        DoRA's row rescaling $\mathrm{diag}(g - 1)\,W$ makes its update full rank:
        """
    ),
    code(
        """
        view = find_adapters(models["dora"])[0]
        geo, g, row_norms = dora_update_stats(W, view.update())
        reference = dense_geometry(W.double(), dense_update(models["dora"]).double())
        torch.testing.assert_close(geo.delta_fro.double(), reference.delta_fro, rtol=1e-4, atol=1e-6)

        svals = {method: singular_values(find_adapters(models[method])[0].update()).detach() for method in ("lora", "delora")}
        svals["dora"] = torch.linalg.svdvals(dense_update(models["dora"]).double())  # no low-rank form: dense SVD
        ranks = {k: int((s > 1e-6 * s[0]).sum()) for k, s in svals.items()}
        print("numerical rank of dW:", ranks)
        assert ranks["lora"] <= 8 and ranks["delora"] <= 8 < ranks["dora"]
        plots.plot_singular_values({k: s[:40] for k, s in svals.items()})
        """
    ),
    md(
        r"""
        ### What the closed forms save

        On a 4096 × 4096 layer with $k = 16$ (an LLM-sized projection): first the accuracy of both
        float32 routes against a float64 dense computation, then the time, best of a few runs, of all the
        metrics from the factors, of the norm alone, and of the dense route (build the $m \times n$
        update, then norms and angles), all on one CPU thread.
        """
    ),
    code(
        """
        def best_of(fn, repeats=5 if FAST else 10):
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            return min(times)


        M, K = 4096, 16
        W_big = torch.randn(M, M) / M**0.5
        big = LowRankUpdate(1e-2 * torch.randn(M, K), torch.randn(M, K))
        exact = dense_geometry(W_big.double(), big.dense().double())  # float64, dense: the reference
        routes = {"closed form, float32": update_geometry(W_big, big), "dense, float32": dense_geometry(W_big, big.dense())}
        accuracy = pd.DataFrame({route: {metric: abs(getattr(geo, metric).item() / getattr(exact, metric).item() - 1)
                                         for metric in ("delta_fro", "angle_delta_w", "angle_w_prime")}
                                 for route, geo in routes.items()})
        assert (accuracy["closed form, float32"] < 1e-4).all()  # the closed form matches float64
        print("relative error against dense float64:")
        print(accuracy.to_string(float_format="%.1e"))
        del exact

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # timed on one thread: the same for every route, and steadier on a busy machine
        try:
            t_all = best_of(lambda: update_geometry(W_big, big))
            t_norm = best_of(lambda: fro_norm(big))
            t_dense = best_of(lambda: dense_geometry(W_big, big.dense()))
        finally:
            torch.set_num_threads(threads)
        timing = pd.DataFrame({
            "seconds": [t_all, t_norm, t_dense],
            "extra memory (MiB)": [(2 * M * K + M * K) * 4 / 2**20, 2 * K * K * 4 / 2**20, M * M * 4 / 2**20],
        }, index=["closed form, all metrics", "closed form, norm only", "dense"])
        timing["x faster than dense"] = t_dense / timing["seconds"]
        print(timing.round(4))
        assert t_dense / t_all > 2 and t_dense / t_norm > 20
        """
    ),
    md(
        r"""
        The norm needs only two $k \times k$ Gram matrices; the inner product with $W$ needs one thin
        product $WV$ ($O(mnk)$, the same order as building the update, but without writing an
        $m \times n$ result: the 64 MiB of the dense route become less than one). That is what lets the tracker
        measure every layer of a model after every step.

        ## 3. Why `atan2` and not `arccos`

        Early in training the update is tiny next to $W$. The angle by which it turns $W$ is then about
        $\|\Delta W\| / \|W\|$, but $\arccos$ reads it from a cosine of $1 - \theta^2/2$, and in float32
        $1 - \theta^2/2$ is just 1 once $\theta \lesssim 10^{-4}$. `atan2(q, ||W|| + p)` takes the
        orthogonal part $q$ directly and keeps full relative precision:
        """
    ),
    code(
        """
        torch.manual_seed(1)
        direction = LowRankUpdate(torch.randn(m, 8), torch.randn(n, 8))
        rows = []
        for size in (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6):
            scale = size * W.norm() / fro_norm(direction)
            tiny = LowRankUpdate(direction.U * scale, direction.V)  # ||dW|| / ||W|| = size, in float32
            truth = dense_geometry(W.double(), tiny.dense().double()).angle_w_prime.item()  # float64 reference
            turned = W + tiny.dense()
            by_arccos = torch.arccos(((turned * W).sum() / (turned.norm() * W.norm())).clamp(-1, 1)).item()
            by_atan2 = update_geometry(W, tiny).angle_w_prime.item()
            rows.append(dict(size=size, truth_rad=truth, arccos_fp32=by_arccos, atan2_fp32=by_atan2,
                             arccos_rel_error=abs(by_arccos - truth) / truth, atan2_rel_error=abs(by_atan2 - truth) / truth))
        angles = pd.DataFrame(rows)
        assert (angles["atan2_rel_error"] < 1e-3).all()  # atan2: accurate at every size
        assert (angles.query("size <= 1e-4")["arccos_rel_error"] > 0.5).all()  # arccos: wrong for small updates
        angles.style.format("{:.3g}")
        """
    ),
    md(
        r"""
        (The closed form has its own limit, the other way round: when $\Delta W$ is nearly *parallel* to
        $W$, $q$ comes from a subtraction. Trained updates are nearly orthogonal to $W$, as the next
        section shows; for the rare parallel case, `Tracker(model, dtype=torch.float64)` measures in float64.)

        ## 4. Angle versus strength

        The paper's title in one picture: the polar angle is $\angle(\Delta W, W)$, the radius is
        $\|\Delta W\|_F / \|W\|_F$, each path runs from the first step to the last (dot), and the dashed arc
        is DeLoRA's bound on the radius. All three updates point almost exactly orthogonally to $W$ (within
        a few degrees of 90°: in $384^2$ dimensions almost every direction is); what distinguishes the
        methods is the radius, and only DeLoRA's has a ceiling, the arc set by $\lambda$.
        """
    ),
    code(
        """
        final_angles = last["angle_delta_w_deg"]
        print("angle(dW, W) at the last step, degrees:", final_angles.round(2).to_dict())
        assert (final_angles - 90).abs().max() < 5  # nearly orthogonal to W, for every method
        delora = frames["delora"]
        assert (delora["rel_delta"] <= delora["bound"] / delora["w_fro"] * (1 + 1e-5)).all()  # inside the arc
        plots.plot_angle_strength(history)
        """
    ),
    code("plots.plot_angles(history)"),
    md(
        """
        **Where next:** `03_tracking_your_training.ipynb` attaches the same tracker to your own training
        loop, to `transformers.Trainer` and to TRL's `SFTTrainer`.
        """
    ),
]


# ============================================================================ 03
NOTEBOOKS["03_tracking_your_training"] = [
    md(
        r"""
        # 03 · Tracking your own training

        **What you will learn**

        1. The `Tracker` hook in a plain PyTorch loop: one line to attach, a DataFrame out.
        2. The same in `transformers.Trainer` with `TrackerCallback`, its numbers in TensorBoard next to
           the loss.
        3. The same in TRL's `SFTTrainer` (when TRL is installed).
        4. Exporting the history (CSV / JSONL) and reading it back.

        The model is the embedded all-MiniLM-L6-v2 classifying BBC News topics, adapted with PEFT's
        `DeloraConfig`; for `SFTTrainer` a causal LM (a tiny local Llama in fast mode, SmolLM2-135M in full
        mode). Everything runs offline.

        **Time:** about a minute in fast mode, a few minutes in full mode, on 2 CPU cores.
        """
    ),
    SETUP_NOTE,
    code(
        """
        %matplotlib inline
        import copy
        import os
        import shutil
        from pathlib import Path

        import warnings

        import pandas as pd
        import torch
        from peft import DeloraConfig, LoraConfig, get_peft_model

        from delora_viz import Tracker, TrackerCallback, load_history
        from delora_viz import plots
        from delora_viz.training.data import load_data
        from delora_viz.training.models import load_model

        FAST = os.environ.get("DELORA_VIZ_FAST") == "1"
        STEPS, BATCH, MAX_LEN = (6, 4, 32) if FAST else (60, 8, 64)
        OUT = Path("runs") / "03_tracking"  # everything this notebook writes
        warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' deprecation notices
        shutil.rmtree(OUT, ignore_errors=True)
        _ = torch.manual_seed(0)

        data = load_data(None, "classification")  # BBC News, embedded
        minilm = load_model("minilm", num_labels=data.num_labels)
        tok = minilm.tokenizer
        print(f"{data.name}: {len(data.train_texts)} train / {len(data.eval_texts)} eval, labels {data.label_names}")
        print(f"{minilm.name}: adapt {minilm.default_target_modules}, train the new head {minilm.head_modules}")


        def delora_model():
            \"\"\"A fresh copy of MiniLM with PEFT's DeLoRA on the query/value projections.\"\"\"
            config = DeloraConfig(r=8, delora_lambda=5, target_modules=minilm.default_target_modules,
                                  modules_to_save=minilm.head_modules, task_type="SEQ_CLS")
            return get_peft_model(copy.deepcopy(minilm.model), config)
        """
    ),
    md(
        r"""
        ## 1. A plain PyTorch loop

        `Tracker(model)` finds every adapted layer (PEFT LoRA, rsLoRA, DoRA, DeLoRA, or our `DeLoRALinear`);
        `.watch(optimizer)` registers a post-step hook, so a row per layer is recorded after every
        `optimizer.step()` without touching the loop. `path=` appends each record to a file as it goes, so a
        killed run keeps what it recorded. The `with` block removes the hook at the end.
        """
    ),
    code(
        """
        model = delora_model()
        adapter = [p for n, p in model.named_parameters() if p.requires_grad and "delora_" in n]
        head = [p for n, p in model.named_parameters() if p.requires_grad and "delora_" not in n]
        opt = torch.optim.AdamW([{"params": adapter, "lr": 3e-2}, {"params": head, "lr": 5e-3}])


        def batch(i):
            idx = range(i * BATCH, (i + 1) * BATCH)
            enc = tok([data.train_texts[j] for j in idx], truncation=True, max_length=MAX_LEN, padding=True, return_tensors="pt")
            enc["labels"] = torch.tensor([data.train_labels[j] for j in idx])
            return enc


        model.train()
        with Tracker(model, path=OUT / "plain_history.jsonl").watch(opt) as tracker:
            tracker.step(0)  # optional: the starting point, dW = 0
            for i in range(STEPS):
                loss = model(**batch(i)).loss
                opt.zero_grad()
                loss.backward()
                opt.step()  # <- the tracker records here
        df = tracker.to_dataframe()
        df.head()
        """
    ),
    code(
        """
        n_layers = df["layer"].nunique()
        assert n_layers == 12  # query and value in each of MiniLM's 6 blocks
        assert sorted(df["step"].unique()) == list(range(STEPS + 1)) and len(df) == (STEPS + 1) * n_layers
        assert (df["delta_fro"] <= df["bound"] * (1 + 1e-5)).all()  # every layer, every step
        assert len(load_history(OUT / "plain_history.jsonl")) == len(df)  # written as it went
        print(tracker.summary())  # mean / max over layers of the last record: ready for any logger
        plots.plot_update_norm(df)
        """
    ),
    code("plots.plot_lambda(df)"),
    md(
        r"""
        The same tracker reads LoRA and DoRA layers too; they have no $\lambda$ and no bound, so those
        columns are NaN (and `dora_mag_drift`, how far DoRA's learned magnitudes moved, appears instead):
        """
    ),
    code(
        """
        for use_dora in (False, True):
            lora = get_peft_model(copy.deepcopy(minilm.model), LoraConfig(r=8, lora_alpha=16, use_dora=use_dora,
                                                                           target_modules=minilm.default_target_modules))
            rows = pd.DataFrame(Tracker(lora).step(0))
            assert set(rows["method"]) == {"dora" if use_dora else "lora"} and rows["bound"].isna().all()
            print(rows[["layer", "method", "delta_fro", "bound", "lambda", "dora_mag_drift"]].head(2).to_string(index=False))
        """
    ),
    md(
        r"""
        ## 2. `transformers.Trainer` with `TrackerCallback`

        Add `TrackerCallback(every=N)` to `callbacks`. It records every N optimizer steps into
        `<output_dir>/delora_history.jsonl`, and adds a summary (`delora/delta_fro_mean`,
        `delora/bound_ratio_max`, `delora/lambda_mean`, ...) to the Trainer's logs, which every `report_to`
        integration receives: here TensorBoard, next to the loss. The reporting callbacks would normally run
        before yours and miss the additions, so `TrackerCallback` moves itself to the front.
        """
    ),
    code(
        """
        import datasets
        from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

        datasets.disable_progress_bars()
        n = STEPS * BATCH
        train_ds = datasets.Dataset.from_dict({"text": data.train_texts[:n], "label": data.train_labels[:n]})
        train_ds = train_ds.map(lambda b: tok(b["text"], truncation=True, max_length=MAX_LEN), batched=True, remove_columns=["text"])

        args = TrainingArguments(
            output_dir=str(OUT / "trainer"), max_steps=STEPS, per_device_train_batch_size=BATCH, learning_rate=3e-2,
            logging_steps=max(1, STEPS // 6), report_to=["tensorboard"], save_strategy="no",
            use_cpu=True, disable_tqdm=True, seed=0,
        )
        trainer = Trainer(model=delora_model(), args=args, train_dataset=train_ds,
                          data_collator=DataCollatorWithPadding(tok), callbacks=[TrackerCallback(every=1)])
        assert isinstance(trainer.callback_handler.callbacks[0], TrackerCallback)  # first in line
        trainer.train()
        hf_history = load_history(OUT / "trainer" / "delora_history.jsonl")
        assert sorted(hf_history["step"].unique()) == list(range(STEPS + 1))
        assert (hf_history["delta_fro"] <= hf_history["bound"] * (1 + 1e-5)).all()
        plots.plot_bound_heatmap(hf_history)
        """
    ),
    md(
        "What reached TensorBoard (read back from the event file; `tensorboard --logdir runs/03_tracking` shows it live):"
    ),
    code(
        """
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        scalars = {}
        for events in (OUT / "trainer").rglob("events.out.tfevents.*"):
            acc = EventAccumulator(str(events))
            acc.Reload()
            for tag in acc.Tags()["scalars"]:
                scalars[tag] = [e.value for e in acc.Scalars(tag)]
        delora_tags = sorted(t for t in scalars if "delora/" in t)
        for tag in ("delora/delta_fro_mean", "delora/bound_ratio_max", "delora/lambda_mean"):
            assert any(t.endswith(tag) for t in delora_tags), (tag, delora_tags)
        assert any(t.endswith("loss") for t in scalars)  # next to the loss
        pd.DataFrame({t: scalars[t][-1:] for t in delora_tags}).T.rename(columns={0: "last value"})
        """
    ),
    md(
        r"""
        ## 3. TRL's `SFTTrainer`

        `SFTTrainer` is a `Trainer`, so the same callback works; here PEFT's config goes in through
        `peft_config=`. A causal LM is needed: in fast mode a tiny random Llama (hidden size 32) built here
        with the MiniLM tokenizer, in full mode SmolLM2-135M-Instruct (the embedded GGUF, converted once).
        The data: question/answer pairs from the embedded chatterbot corpus.
        """
    ),
    code(
        """
        try:
            import trl
        except ImportError:
            trl = None
            print("TRL is not installed (pip install trl): skipping this section")

        if trl is not None:
            qa = load_data(None, "causal_lm")  # "Question: ...\\nAnswer: ..." texts
            if FAST:
                from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

                from delora_viz.training.models import minilm_dir

                sft_tok = AutoTokenizer.from_pretrained(minilm_dir())
                sft_tok.eos_token = sft_tok.sep_token  # a BERT vocabulary: [SEP] ends a text
                config = LlamaConfig(vocab_size=len(sft_tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True,
                                     pad_token_id=sft_tok.pad_token_id, bos_token_id=sft_tok.cls_token_id,
                                     eos_token_id=sft_tok.sep_token_id)
                sft_model = LlamaForCausalLM(config)
            else:
                smol = load_model("smollm2")  # ~20 s the first time (GGUF -> safetensors), then cached
                sft_model, sft_tok = smol.model, smol.tokenizer
            sft_args = trl.SFTConfig(
                output_dir=str(OUT / "sft"), max_steps=STEPS, per_device_train_batch_size=BATCH, learning_rate=1e-2,
                logging_steps=max(1, STEPS // 10), max_length=MAX_LEN, report_to=["tensorboard"], save_strategy="no",
                use_cpu=True, disable_tqdm=True, seed=0,
            )
            sft = trl.SFTTrainer(
                model=sft_model, args=sft_args, processing_class=sft_tok,
                train_dataset=datasets.Dataset.from_dict({"text": qa.train_texts[: STEPS * BATCH]}),
                peft_config=DeloraConfig(r=8, delora_lambda=5, target_modules=["q_proj", "v_proj"]),
                callbacks=[TrackerCallback(every=1)],
            )
            sft.train()
            sft_history = load_history(OUT / "sft" / "delora_history.jsonl")
            assert sorted(sft_history["step"].unique()) == list(range(STEPS + 1))
            assert (sft_history["delta_fro"] <= sft_history["bound"] * (1 + 1e-5)).all()
            assert any("delora/bound_ratio_max" in entry for entry in sft.state.log_history)
            sft_log = pd.DataFrame([dict(step=e["step"], method="delora", run="SFT (DeLoRA)", loss=e["loss"])
                                    for e in sft.state.log_history if "loss" in e])
            display(plots.plot_loss(sft_log))
        """
    ),
    md(
        r"""
        ## 4. Export and reload

        `Tracker.save` writes CSV or JSONL (atomically: an interrupted save never leaves half a file);
        `load_history` / `Tracker.load` read either back, every float bit for bit.
        """
    ),
    code(
        """
        for name in ("plain_history.csv", "plain_history_copy.jsonl"):
            path = tracker.save(OUT / name)
            back = Tracker.load(path)
            pd.testing.assert_frame_equal(back, df, check_dtype=False, check_exact=True)  # bit for bit
            print(f"{path}: {len(back)} rows, identical")
        sorted(p.name for p in OUT.iterdir())
        """
    ),
    md(
        """
        **Where next:** `04_lora_dora_delora.ipynb` compares the three methods on the embedded model and
        repeats the paper's learning-rate robustness experiment in small.
        """
    ),
]


# ============================================================================ 04
NOTEBOOKS["04_lora_dora_delora"] = [
    md(
        r"""
        # 04 · LoRA vs DoRA vs DeLoRA

        **What you will learn**

        1. How the three methods compare on the embedded default (all-MiniLM-L6-v2 classifying BBC News
           topics, rank 8 on the query/value projections, each method at its recommended learning rate),
           with one call: `compare(["lora", "dora", "delora"], TrainConfig(...))`.
        2. A small version of the paper's learning-rate robustness experiment (its Fig. 2 and 3): the
           distance $\|W' - W\|_F$ and the accuracy against learning-rate multipliers, and the distance
           over the steps.
        3. What we actually observe, where it differs from the paper, and why.

        **Time:** about a minute in fast mode (a few steps per run: the numbers are only a smoke test); in
        full mode 10-25 minutes on 2 CPU cores (22 training runs), which gives the real picture.
        """
    ),
    SETUP_NOTE,
    code(
        """
        %matplotlib inline
        import os
        import warnings
        from dataclasses import replace

        import numpy as np
        import pandas as pd
        from IPython.display import Markdown, display

        from delora_viz import plots
        from delora_viz.training.config import TrainConfig
        from delora_viz.training.methods import METHODS
        from delora_viz.training.loop import RunResult, compare, iter_lr_sweep, prepare, sweep_frame

        FAST = os.environ.get("DELORA_VIZ_FAST") == "1"
        warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' deprecation notices

        if FAST:
            CONFIG = TrainConfig(steps=6, batch_size=4, max_length=32, eval_every=6, eval_examples=16)
        else:
            CONFIG = TrainConfig(steps=60, eval_every=20)  # batch 8, 64 tokens, 96 held-out examples
        prepared = prepare(CONFIG)  # MiniLM and BBC News, loaded once; every run trains a deep copy
        for name in ("lora", "dora", "delora"):
            print(f"{METHODS[name].label:7s} lr {METHODS[name].default_lr:g}: {METHODS[name].description}")
        """
    ),
    md(
        r"""
        ## 1. The comparison

        Same data order, same seed, same head learning rate; each method at its recommended rate (LoRA and
        DoRA 2e-3, DeLoRA 3e-2 with $\lambda = 5$: its factors are normalised away, so it needs bigger steps
        to turn the update as far).
        """
    ),
    code(
        """
        results = compare(["lora", "dora", "delora"], CONFIG, prepared)
        history = pd.concat([r.history_frame() for r in results.values()], ignore_index=True)
        tracked = pd.concat([r.tracker_frame() for r in results.values()], ignore_index=True)

        assert all(r.status == "finished" for r in results.values())
        delora_rows = tracked[tracked["method"] == "delora"]
        assert (delora_rows["delta_fro"] <= delora_rows["bound"] * (1 + 1e-5)).all()  # within its bound, always
        assert tracked.loc[tracked["method"] != "delora", "bound"].isna().all()  # LoRA and DoRA have none

        table = pd.DataFrame({name: r.final for name, r in results.items()}).T
        print(f"accuracy before training (every method starts at dW = 0): {prepared.baseline:.3f}")
        table[["lr", "eval_metric", "delta_fro_mean", "rel_delta_mean", "angle_delta_w_deg_mean",
               "angle_w_prime_deg_mean", "lambda_mean", "seconds"]].astype(float).round(3)
        """
    ),
    code("plots.plot_loss(history)"),
    code("plots.plot_update_norm(tracked)"),
    code("plots.plot_angle_strength(tracked)"),
    code(
        """
        final = table["eval_metric"].astype(float)
        moved = table["delta_fro_mean"].astype(float)
        lines = [
            f"- Accuracy after {CONFIG.steps} steps: " + ", ".join(f"{METHODS[m].label} {final[m]:.3f}" for m in final.index)
            + f" (from {prepared.baseline:.3f} before training)."
            + (" With so few steps these accuracies are noise; run the notebook in full mode." if FAST else ""),
            f"- Farthest from the pretrained weights: {METHODS[moved.idxmax()].label} (mean ||dW||_F {moved.max():.3f});"
            f" closest: {METHODS[moved.idxmin()].label} ({moved.min():.3f}).",
            f"- DeLoRA used at most {table.loc['delora', 'bound_ratio_max']:.0%} of its bound in any layer;"
            f" lambda moved from 5 to a mean of {table.loc['delora', 'lambda_mean']:.3f}.",
        ]
        display(Markdown("**What this run shows** (computed from the results above):\\n\\n" + "\\n".join(lines)))
        """
    ),
    md(
        r"""
        ## 2. Learning-rate robustness (the paper's Fig. 2 and 3, in small)

        The paper's claim: because DeLoRA bounds $\|\Delta W\|_F$ by $|\lambda| \max_j \|W_{:,j}\|$, its
        distance from the pretrained weights, and so its accuracy, depends much less on the learning rate
        than LoRA's and DoRA's. We train each method at multiples of its recommended rate and record, per
        run, the final mean distance $\|W' - W\|_F$ over layers and the accuracy. `delora-paper` is
        DeLoRA with the paper's initialisation (notebook 01), which PEFT does not offer.
        """
    ),
    code(
        """
        if FAST:
            SWEEP_METHODS, MULTIPLIERS = ["lora", "delora", "delora-paper"], [0.1, 1, 10]
            SWEEP = replace(CONFIG, steps=4, eval_every=4)
        else:
            SWEEP_METHODS, MULTIPLIERS = ["lora", "dora", "delora", "delora-paper"], [0.1, 1, 10, 30]
            SWEEP = replace(CONFIG, steps=40, eval_every=40)
        sweep_runs = [e for e in iter_lr_sweep(SWEEP_METHODS, MULTIPLIERS, SWEEP, prepared) if isinstance(e, RunResult)]
        sweep = sweep_frame(sweep_runs)
        sweep_tracked = pd.concat([r.tracker_frame() for r in sweep_runs], ignore_index=True)
        sweep.round(4)
        """
    ),
    code("plots.plot_lr_sweep(sweep)"),
    md(
        r"""
        The distance over the steps, one line per run (lighter shades: higher multipliers), with DeLoRA's
        bounds dashed:
        """
    ),
    code("plots.plot_update_norm(sweep_tracked, show_worst_layer=False)"),
    md(
        r"""
        ### What we observe, and where it differs from the paper

        The claims in this paragraph are checked in the next cell, in fast and in full mode alike; the
        numbers are computed from this run.

        * **The bound holds**: DeLoRA's update stays under $|\lambda| \max_j \|W_{:,j}\|$ at every step of
          every run, at every learning rate.
        * **DeLoRA's distance depends less on the learning rate than LoRA's**: across the multipliers,
          LoRA's final distance spreads over a wider range (largest / smallest) than DeLoRA's.
        * **PEFT's DeLoRA is not the paper's at low rates**: at the lowest multiplier it has already
          travelled a large part of its distance at 1×, because PEFT initialises $B = 0$ and the first
          optimizer step gives every rank-one term its full unit size whatever the rate (notebook 01). With
          the paper's own initialisation (`delora-paper`, which PEFT does not offer) the distance at the low
          end shrinks more with the learning rate than PEFT's.
        * **$\lambda$ is learned, at the same learning rate** (PEFT trains it with the factors), so at high
          multipliers the bound itself moves: DeLoRA's distance is bounded at every step, but the bound is
          not fixed in advance unless $\lambda$ is frozen or given its own, smaller rate.
        """
    ),
    code(
        """
        def spread(method):
            d = sweep.loc[(sweep["method"] == method) & ~sweep["diverged"]].set_index("lr_multiplier")["final_distance"]
            return d.max() / d.min(), d


        for r in sweep_runs:  # the bound holds in every DeLoRA run, both inits, every step
            rows = r.tracker_frame()
            if r.method.startswith("delora"):
                assert (rows["delta_fro"] <= rows["bound"] * (1 + 1e-5)).all(), r.run
        lora_spread, lora_d = spread("lora")
        delora_spread, delora_d = spread("delora")
        paper_spread, paper_d = spread("delora-paper")
        low = min(MULTIPLIERS)
        assert lora_spread > delora_spread  # DeLoRA's distance depends less on the learning rate
        assert delora_d[low] / delora_d[1] > 0.3  # PEFT init: already far at the lowest rate (the step-1 jump)
        assert paper_d[low] / paper_d[1] < delora_d[low] / delora_d[1]  # paper init: scales with the rate
        lam_end = {r.config.lr_multiplier: r.final["lambda_mean"] for r in sweep_runs if r.method == "delora"}
        assert abs(lam_end[max(MULTIPLIERS)] - 5) > abs(lam_end[1] - 5)  # lambda (and the bound) drifts more at high rates

        acc = sweep.pivot(index="lr_multiplier", columns="method", values="eval_metric")
        lines = [
            f"- Distance spread (largest / smallest final ||W'-W||_F over {', '.join(f'{m:g}x' for m in MULTIPLIERS)}): "
            + ", ".join(f"{METHODS[m].label} {spread(m)[0]:.1f}x" for m in SWEEP_METHODS) + ".",
            f"- At {low:g}x the rate, DeLoRA (PEFT init) is at {delora_d[low] / delora_d[1]:.0%} of its distance at 1x;"
            f" with the paper's init, {paper_d[low] / paper_d[1]:.0%}.",
            "- DeLoRA's mean lambda at the end (it starts at 5): "
            + ", ".join(f"{m:g}x: {v:.2f}" for m, v in sorted(lam_end.items())) + ".",
            "- Accuracy (before training: {:.3f}): ".format(prepared.baseline)
            + "; ".join(f"{METHODS[m].label} " + ", ".join(f"{k:g}x {v:.2f}" for k, v in acc[m].items() if np.isfinite(v))
                        for m in SWEEP_METHODS) + ".",
        ]
        worst = acc.min()  # each method's worst accuracy over the multipliers
        if worst["delora"] > worst["lora"]:
            verdict = "as in the paper, DeLoRA keeps its accuracy across the rates better than LoRA"
        elif worst["delora"] < worst["lora"]:
            verdict = "unlike the paper, LoRA's worst case is better than DeLoRA's in this run"
        else:
            verdict = "no difference between LoRA and DeLoRA at this length"
        lines.append("- Worst accuracy over the multipliers: " + ", ".join(f"{METHODS[m].label} {worst[m]:.2f}" for m in SWEEP_METHODS)
                     + f": {verdict}.")
        diverged = sweep.loc[sweep["diverged"], ["method", "lr_multiplier"]]
        if len(diverged):
            lines.append("- Diverged (loss became NaN/inf): " + ", ".join(f"{METHODS[m].label} {k:g}x" for m, k in diverged.values) + ".")
        if FAST:
            lines.append("- Fast mode: a handful of steps per run, so the accuracies say nothing yet; run in full mode.")
        display(Markdown("**This run, in numbers:**\\n\\n" + "\\n".join(lines)))
        """
    ),
    md(
        """
        **Where next:** `05_bring_your_own_model.ipynb` applies DeLoRA to SmolLM2 (or any Hugging Face causal
        LM) with the usual PEFT workflow, and shows how `target_modules` and `lambda_pattern` set the bound.
        """
    ),
]


# ============================================================================ 05
NOTEBOOKS["05_bring_your_own_model"] = [
    md(
        r"""
        # 05 · Bring your own model

        **What you will learn**

        1. The usual PEFT workflow with DeLoRA: swap `LoraConfig` for `DeloraConfig`, train (here with
           `transformers.Trainer` and the tracker attached), save, reload with `PeftModel.from_pretrained`.
        2. How to choose $\lambda$ for a model's width.
        3. What `target_modules` and `lambda_pattern` (and the rank) do to the bound.

        **The model:** in full mode SmolLM2-135M-Instruct, the embedded preset
        (`delora_viz.training.models.load_model("smollm2")` converts its GGUF once, ~20 s, then loads from a cache); any
        Hugging Face causal LM id or local directory works the same way (Llama, Qwen, Mistral...: DeLoRA
        needs `nn.Linear` layers, so not GPT-2). In fast mode, a tiny random Llama built and saved right
        here, because training SmolLM2 on a CPU takes minutes.

        **Time:** under a minute in fast mode; about 5-10 minutes in full mode on 2 CPU cores.
        """
    ),
    SETUP_NOTE,
    code(
        """
        %matplotlib inline
        import copy
        import json
        import os
        import shutil
        import warnings
        from pathlib import Path

        import datasets
        import pandas as pd
        import torch
        import transformers
        from peft import DeloraConfig, LoraConfig, PeftModel, get_peft_model
        from transformers import AutoModelForCausalLM, DataCollatorForLanguageModeling, Trainer, TrainingArguments

        from delora_viz import Tracker, TrackerCallback, load_history
        from delora_viz import plots
        from delora_viz.training.data import load_data
        from delora_viz.training.models import load_model, minilm_dir

        FAST = os.environ.get("DELORA_VIZ_FAST") == "1"
        STEPS, BATCH, MAX_LEN = (10, 4, 48) if FAST else (60, 8, 64)
        OUT = Path("runs") / "05_byom"
        shutil.rmtree(OUT, ignore_errors=True)
        warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' deprecation notices
        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bars
        _ = torch.manual_seed(0)
        """
    ),
    md("## 1. Load a model"),
    code(
        """
        if FAST:  # a tiny random Llama, saved like any local checkpoint, with the embedded MiniLM tokenizer
            from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

            tiny_tok = AutoTokenizer.from_pretrained(minilm_dir())
            tiny_tok.eos_token = tiny_tok.sep_token  # a BERT vocabulary: [SEP] ends a text
            config = LlamaConfig(vocab_size=len(tiny_tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True,
                                 pad_token_id=tiny_tok.pad_token_id, bos_token_id=tiny_tok.cls_token_id,
                                 eos_token_id=tiny_tok.sep_token_id)
            LlamaForCausalLM(config).save_pretrained(OUT / "tiny-llama")
            tiny_tok.save_pretrained(OUT / "tiny-llama")
            MODEL = str(OUT / "tiny-llama")
        else:
            MODEL = "smollm2"  # or "HuggingFaceTB/SmolLM2-135M-Instruct", "Qwen/Qwen2.5-0.5B", a local directory...

        lm = load_model(MODEL, task="causal_lm")
        base, tok = lm.model, lm.tokenizer
        hidden = base.config.hidden_size
        print(f"{lm.name}: {sum(p.numel() for p in base.parameters()) / 1e6:.1f}M parameters, hidden size {hidden},"
              f" loaded from {lm.source}")
        """
    ),
    md(
        r"""
        ## 2. Choosing $\lambda$

        DeLoRA's update has typical size $\|\Delta W\|_F \approx |\lambda|\,\mathrm{rms}(w)/\sqrt r$, and
        $\|W\|_F = \mathrm{rms}(w)\sqrt n$, so relative to the weight

        $$\frac{\|\Delta W\|_F}{\|W\|_F} \approx \frac{|\lambda|}{\sqrt{r\,n}}$$

        for a layer with $n$ inputs. PEFT's default $\lambda = 15$ moves a 4096-wide layer by about 8% at
        $r = 8$, but a 576-wide one (SmolLM2) by 22% and a 32-wide toy by 94%. So we pick $\lambda$ for a
        chosen relative size, 10% here: $\lambda = 0.1\sqrt{r\,n}$.
        """
    ),
    code(
        """
        R = 8
        LAMBDA = round(0.1 * (R * hidden) ** 0.5, 2)
        print(f"r = {R}, n = {hidden}: lambda = {LAMBDA}  (PEFT's default 15 would mean ~{15 / (R * hidden) ** 0.5:.0%} of ||W||)")
        """
    ),
    md(
        r"""
        ## 3. The workflow: swap the config, train, save, reload

        The one line that changes in a LoRA script is the config. The tracker rides along as a
        `TrackerCallback`; the data is the embedded chatterbot question/answer corpus.
        """
    ),
    code(
        """
        # config = LoraConfig(r=R, lora_alpha=2 * R, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
        config = DeloraConfig(r=R, delora_lambda=LAMBDA, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
        model = get_peft_model(copy.deepcopy(base), config)
        model.print_trainable_parameters()

        qa = load_data(None, "causal_lm")  # "Question: ...\\nAnswer: ..." pairs


        def tokenized(texts):
            ds = datasets.Dataset.from_dict({"text": texts})
            return ds.map(lambda b: tok(b["text"], truncation=True, max_length=MAX_LEN), batched=True, remove_columns=["text"])


        args = TrainingArguments(
            output_dir=str(OUT / "trainer"), max_steps=STEPS, per_device_train_batch_size=BATCH,
            per_device_eval_batch_size=BATCH, learning_rate=1e-2, logging_steps=max(1, STEPS // 5),
            report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True, seed=0,
        )
        trainer = Trainer(
            model=model, args=args, train_dataset=tokenized(qa.train_texts[: STEPS * BATCH]),
            eval_dataset=tokenized(qa.eval_texts[: 4 * BATCH]),
            data_collator=DataCollatorForLanguageModeling(tok, mlm=False), callbacks=[TrackerCallback(every=1)],
        )
        before = trainer.evaluate()["eval_loss"]
        trainer.train()
        after = trainer.evaluate()["eval_loss"]
        print(f"held-out loss: {before:.4f} before, {after:.4f} after {STEPS} steps")
        assert after < before  # it learned something
        """
    ),
    code(
        """
        history = load_history(OUT / "trainer" / "delora_history.jsonl")
        assert (history["delta_fro"] <= history["bound"] * (1 + 1e-5)).all()
        first = history[history["step"] == 1]["rel_delta"].mean()
        print(f"||dW|| / ||W|| after the first step: {first:.3f}  (the rule of thumb: {LAMBDA / (R * hidden) ** 0.5:.3f})")
        assert 0.5 < first / (LAMBDA / (R * hidden) ** 0.5) < 2  # the rule of thumb holds to within 2x
        plots.plot_update_norm(history)
        """
    ),
    md(
        r"""
        `save_pretrained` writes a small adapter directory (the factors, each layer's learned $\lambda$ and
        the frozen column norms); `PeftModel.from_pretrained` on a freshly loaded base model gives back the
        same outputs, and `merge_and_unload` folds the update into plain weights for deployment.
        """
    ),
    code(
        """
        model.save_pretrained(OUT / "adapter")
        saved = json.loads((OUT / "adapter" / "adapter_config.json").read_text())
        assert saved["peft_type"] == "DELORA"
        print(sorted(p.name for p in (OUT / "adapter").iterdir()), f"{(OUT / 'adapter' / 'adapter_model.safetensors').stat().st_size / 1e3:.0f} kB")

        reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(lm.source), OUT / "adapter")
        model.eval()
        reloaded.eval()
        batch = tok(qa.eval_texts[:2], return_tensors="pt", padding=True, truncation=True, max_length=MAX_LEN)
        with torch.no_grad():
            expected = model(**batch).logits
            torch.testing.assert_close(reloaded(**batch).logits, expected, rtol=1e-4, atol=1e-4)

            again = pd.DataFrame(Tracker(reloaded).step(0)).set_index("layer")  # same update, same geometry
            last = history[history["step"] == STEPS].set_index("layer")
            pd.testing.assert_series_equal(again["lambda"], last["lambda"], check_names=False, rtol=1e-6)
            pd.testing.assert_series_equal(again["delta_fro"], last["delta_fro"], check_names=False, rtol=1e-5)

            merged = reloaded.merge_and_unload()  # a plain transformers model again
            torch.testing.assert_close(merged(**batch).logits, expected, rtol=1e-4, atol=1e-4)
        print("reloaded and merged models reproduce the trained model's outputs; the learned lambdas came back too")
        """
    ),
    md(
        r"""
        ## 4. `target_modules`, `lambda_pattern` and the bound

        The bound is **per layer**: each adapted layer $\ell$ gets $\|\Delta W_\ell\|_F \le |\lambda_\ell| \max_j \|W_{\ell,:,j}\|$.
        So:

        * `target_modules` chooses which layers carry an update; more layers means more (each bounded)
          changes to the function. `"all-linear"` adapts every linear layer except the output head.
        * `lambda_pattern` ({regex or name suffix: $\lambda$}) sets $\lambda$, and with it the bound, per layer.
        * The rank $r$ does not enter the bound at all (it only changes the typical size $|\lambda|\,\mathrm{rms}(w)/\sqrt r$).
        * Relative to the weight, the bound is at least $|\lambda|/\sqrt n$ ($\|W\|_F \le \sqrt n \max_j w_j$):
          the same $\lambda$ allows relatively less change in wider layers.

        At the start (before any training) the tracker already knows every bound:
        """
    ),
    code(
        """
        choices = {
            "q_proj, v_proj": DeloraConfig(r=R, delora_lambda=LAMBDA, target_modules=["q_proj", "v_proj"]),
            "q_proj, v_proj, r = 4R": DeloraConfig(r=4 * R, delora_lambda=LAMBDA, target_modules=["q_proj", "v_proj"]),
            "v_proj at lambda/4": DeloraConfig(r=R, delora_lambda=LAMBDA, target_modules=["q_proj", "v_proj"],
                                               lambda_pattern={"v_proj": LAMBDA / 4}),
            "all-linear": DeloraConfig(r=R, delora_lambda=LAMBDA, target_modules="all-linear"),
            "regex: block 0 attention": DeloraConfig(r=R, delora_lambda=LAMBDA, target_modules=r".*layers\\.0\\.self_attn\\.[qkvo]_proj"),
        }
        frames = []
        for label, cfg in choices.items():
            adapted = get_peft_model(copy.deepcopy(base), cfg)
            trainable = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
            frames.append(pd.DataFrame(Tracker(adapted).step(0)).assign(choice=label, trainable=trainable))
            del adapted
        bounds = pd.concat(frames, ignore_index=True)
        bounds["kind"] = bounds["layer"].str.rsplit(".", n=1).str[-1]
        bounds["n"] = [base.get_submodule(name).in_features for name in bounds["layer"]]
        bounds["bound_rel"] = bounds["bound_loose"] / bounds["w_fro"]
        bounds.groupby("choice", sort=False).agg(layers=("layer", "size"), trainable=("trainable", "first"),
                                                 lambdas=("lambda", lambda s: sorted(set(s.round(3)))),
                                                 sum_of_bounds=("bound_loose", "sum"), mean_bound_rel=("bound_rel", "mean")).round(3)
        """
    ),
    code(
        """
        for _, row in bounds.iterrows():  # bound_loose = |lambda| max_j ||W[:, j]||, from the base weights by hand
            col_norms = base.get_submodule(row["layer"]).weight.detach().norm(dim=0)
            assert abs(row["bound_loose"] - abs(row["lambda"]) * col_norms.max().item()) <= 1e-5 * row["bound_loose"]
        assert (bounds["bound_rel"] >= bounds["lambda"].abs() / bounds["n"] ** 0.5 * (1 - 1e-6)).all()  # >= |lambda| / sqrt(n)

        by = {label: rows.set_index("layer") for label, rows in bounds.groupby("choice")}
        assert ((by["v_proj at lambda/4"].query("kind == 'v_proj'")["lambda"] - LAMBDA / 4).abs() < 1e-6 * LAMBDA).all()
        assert ((by["v_proj at lambda/4"].query("kind == 'q_proj'")["lambda"] - LAMBDA).abs() < 1e-6 * LAMBDA).all()
        pd.testing.assert_series_equal(by["q_proj, v_proj, r = 4R"]["bound_loose"], by["q_proj, v_proj"]["bound_loose"])  # r: no effect
        assert {"gate_proj", "up_proj", "down_proj", "o_proj"} <= set(by["all-linear"]["kind"])
        assert not any("lm_head" in name for name in bounds["layer"])  # the output head is never adapted
        assert all(".layers.0." in name for name in by["regex: block 0 attention"].index)

        per_kind = by["all-linear"].groupby("kind").agg(n=("n", "first"), bound_rel=("bound_rel", "mean"))
        per_kind["lambda/sqrt(n)"] = LAMBDA / per_kind["n"] ** 0.5
        assert per_kind.loc["down_proj", "n"] > per_kind.loc["q_proj", "n"]  # wider input ...
        assert per_kind.loc["down_proj", "lambda/sqrt(n)"] < per_kind.loc["q_proj", "lambda/sqrt(n)"]  # ... lower floor
        per_kind.round(3)
        """
    ),
    md(
        r"""
        In the table above, `down_proj` reads the MLP's wider hidden state, so its floor $\lambda/\sqrt n$ is
        lower than the attention projections'. Back to the model trained in section 3: how close each
        layer came to its own bound, step by step.
        """
    ),
    code("plots.plot_bound_heatmap(history)"),
    md(
        """
        **That's the tour.** The Gradio app (`python app.py`) runs the same comparisons interactively on
        the embedded model, SmolLM2, or any model id or directory you type in.
        """
    ),
]


# ============================================================================ writing
def build_notebook(name: str) -> nbformat.NotebookNode:
    """The notebook `name`, without outputs, with stable cell ids (so rebuilding changes nothing)."""
    cells = []
    for i, (kind, source) in enumerate(NOTEBOOKS[name]):
        cell = new_markdown_cell(source) if kind == "markdown" else new_code_cell(source)
        cell["id"] = f"c{i:02d}"
        cells.append(cell)
    nb = new_notebook(cells=cells)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    return nb


def render(name: str) -> str:
    return nbformat.writes(build_notebook(name)) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name in NOTEBOOKS:
        path = HERE / f"{name}.ipynb"
        text = render(name)
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(HERE.parent)}")
    if stale:
        print(f"out of date (run python notebooks/_build.py): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
