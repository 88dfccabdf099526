"""What each number of a report's summary table is, as a formula and a sentence: the
``definitions`` section of the HTML page. Each entry names the summary rows it defines
(:func:`grokinterp.report.figures.summary_rows`); the sentence may hold inline formulas between
``\\(`` and ``\\)``, drawn like the formula itself."""

from __future__ import annotations

import html as _html
import re

from .html import math_html

__all__ = ["DEFINITIONS", "definition_html"]

_W = r"w_k = 2\pi k / p"

#: (name, the summary rows it defines, TeX of the defining formula, a sentence on it)
DEFINITIONS: tuple[tuple[str, tuple[str, ...], str, str], ...] = (
    ("accuracy", ("train accuracy", "test accuracy"),
        r"\mathrm{acc} = \frac{1}{N} \sum_{(a,b)} \big[\arg\max_c \ell_c(a,b) = y(a,b)\big]",
        r"the share of the split's \(N\) pairs whose largest logit \(\ell_c\) is the answer \(y\) (train and test alike)",
    ),
    ("loss", ("train loss", "test loss"),
        r"L = -\frac{1}{N} \sum_{(a,b)} \ln \operatorname{softmax}\big(\ell(a,b)\big)_{y(a,b)}",
        "cross-entropy over the p answers, computed in float64 (train and test alike)",
    ),
    ("key frequencies", ("key frequencies (W_L)", "key frequencies (W_E)", "key frequencies (neurons)"),
        r"K = \{\, k : s_k \ge 0.1 \max_j s_j \,\}",
        r"\(s_k\): the Fourier power at frequency \(k\) of the neuron-to-logit map \(W_L = W_{\mathrm{out}} W_U\); "
        r"the (W_E) row scores the embedding's power instead, the (neurons) row the neurons' dominant frequencies. "
        "Never a fixed count",
    ),
    ("restricted loss", ("restricted loss",),
        _W,
        r"the train loss of the logits keeping only the constant and the \(\cos(w_k(a+b))\), \(\sin(w_k(a+b))\) "
        r"components for \(k \in K\), with the mean of the original logits added back",
    ),
    ("excluded loss", ("excluded loss",),
        _W,
        r"the train loss of the logits with exactly those \(\cos(w_k(a+b))\), \(\sin(w_k(a+b))\) components removed",
    ),
    ("logit fit", ("logit fit (fraction explained)",),
        r"\ell_c(a,b) - \bar\ell(a,b) \approx \sum_{k \in K} \alpha_k \cos\big(w_k (a + b - c)\big)",
        "the share of the centred logits' variance that this least-squares fit explains",
    ),
    ("neurons in a cluster", ("neurons in a cluster",),
        r"\max_k \frac{\operatorname{Var}_k(n)}{\operatorname{Var}(n)} \ge 0.85",
        "the number of neurons n with at least 0.85 of their centred activation variance in the terms of one frequency",
    ),
    ("Gini coefficient", ("Gini W_E", "Gini W_L"),
        r"G = \frac{\sum_{i=1}^{n} (2i - n - 1)\, x_{(i)}}{n \sum_{i} x_i}",
        r"over the Fourier-component norms \(x\) of \(W_E\) (over the input tokens) and of \(W_L\) (over the answers), "
        r"sorted ascending: 0 when all are equal, \((n-1)/n\) when one holds everything",
    ),
    ("L2 norm", ("L2 norm",),
        r"\lVert \theta \rVert_2 = \Big(\sum_i \theta_i^2\Big)^{1/2}",
        "over every parameter, after the mask",
    ),
    ("Fourier entropy", ("Fourier entropy (in)",),
        r"H = -\sum_{k \ge 1} q_k \ln q_k, \qquad q_k = \frac{P_k}{\sum_j P_j}",
        r"\(P_k\): the power at frequency \(k\) of one neuron's input weights over the tokens; "
        r"\(H\) averaged over the neurons (0 for one frequency, \(\ln\lfloor p/2 \rfloor\) for a flat spectrum)",
    ),
    ("t_mem, t_gen", ("t_mem", "t_gen"),
        r"t_{\mathrm{mem}} = \min\{\, e : \mathrm{acc}_{\mathrm{train}}(e) > 0.95 \,\}, \qquad "
        r"t_{\mathrm{gen}} = \min\{\, e : \mathrm{acc}_{\mathrm{test}}(e) > 0.95 \,\}",
        "the first evaluated epochs whose train, and test, accuracy exceeds 0.95",
    ),
    ("tau_grok", ("tau_grok",),
        r"\tau_{\mathrm{grok}} = t_{\mathrm{gen}} / t_{\mathrm{mem}}",
        "how long generalisation lags behind memorisation",
    ),
    ("mask density", ("mask density",),
        r"\frac{\#\,\text{kept weights}}{\#\,\text{weights}} = 1 - r",
        r"with \(r\) the prune ratio, the fraction of weights removed",
    ),
    ("mask alignment ratio", ("mask alignment ratio",),
        r"\frac{A(M)}{\operatorname{mean}_R A(R)}, \qquad A(M) = \frac{\sum_{f \in S} E_f}{\sum_{f \ge 1} E_f}",
        r"\(E_f\): the mask's Fourier energy at frequency \(f\); \(S\): the key frequencies and their harmonics; "
        r"\(R\): random masks keeping as many weights in each tensor (near 1 for a random mask)",
    ),
    ("gradient symmetricity", ("gradient symmetricity",),
        r"\operatorname{mean}_{(a,b,c)} \cos\!\Big(\frac{\partial \ell_c(a,b)}{\partial e_a}, "
        r"\frac{\partial \ell_c(a,b)}{\partial e_b}\Big)",
        r"over seeded random triples, \(e_a\), \(e_b\) the operands' embedding vectors: 1 for a model that reads "
        r"\(E_a + E_b\) (the pizza)",
    ),
    ("distance irrelevance", ("distance irrelevance",),
        r"q = \frac{\operatorname{mean}_d \operatorname{std}_s L(s, d)}{\operatorname{std} L}",
        r"\(L(s, d)\): the correct-answer logit at \(a + b \equiv s\), \(a - b \equiv d\); near 1 for the clock, small "
        "for the pizza",
    ),
    ("clock or pizza", ("clock or pizza",),
        r"\text{pizza: } g \ge 0.95,\ q \le 0.5; \qquad \text{clock: } g < 0.95,\ q \ge 0.8",
        r"with \(g\) the gradient symmetricity and \(q\) the distance irrelevance; mixed otherwise",
    ),
)

_INLINE = re.compile(r"\\\((.+?)\\\)")


def _sentence_html(sentence: str) -> str:
    """The sentence escaped, its ``\\(...\\)`` parts as formulas."""
    out, last = [], 0
    for m in _INLINE.finditer(sentence):
        out.append(_html.escape(sentence[last:m.start()]))
        out.append(math_html(m.group(1)))
        last = m.end()
    out.append(_html.escape(sentence[last:]))
    return "".join(out)


def definition_html(labels) -> str:
    """A table of the definitions of the summary rows ``labels`` (in the order of
    :data:`DEFINITIONS`); empty when none of them has one."""
    shown = set(labels)
    rows = [(name, tex, words) for name, covers, tex, words in DEFINITIONS if shown.intersection(covers)]
    if not rows:
        return ""
    body = "".join(f'<tr><td>{_html.escape(label)}</td><td>{math_html(tex)}<div class="gloss">{_sentence_html(words)}</div></td></tr>'
                   for label, tex, words in rows)
    return f'<table class="definitions"><tr><th>quantity</th><th>definition</th></tr>{body}</table>'
