"""Fourier analysis of modular-arithmetic models: bases, transforms, spectra, key frequencies,
neuron clusters and Fourier entropy.

One import point for :mod:`grokinterp.fourier.basis` (bases over Z_p and Z_p^*, ``fft1d`` / ``fft2d``,
projections, sum directions), :mod:`grokinterp.fourier.spectra` (spectra of W_E, of each neuron's input
weights, of W_L = W_out W_U and of the neuron activations; ``key_frequencies``,
``neuron_frequencies``, ``fourier_entropy``) and :mod:`grokinterp.fourier.grid` (``GridAnalysis``: one
model on its task's grid, the grid forward and the neuron decomposition computed once for every
analysis that reads them). Basis convention: row 0 constant, rows 2k-1 / 2k
cos / sin of frequency k, orthonormal; an even p adds cos(πx); 2D transforms put a on rows and b on
columns (Nanda et al. 2023). ``mul`` / ``div`` tasks are read in the multiplicative basis (discrete
log base the smallest primitive root).
"""

from .basis import (
    FourierBasis,
    basis_for_op,
    fft1d,
    fft2d,
    fourier_2d_basis_term,
    fourier_basis,
    frequency_power,
    frequency_power_2d,
    get_basis,
    ifft1d,
    ifft2d,
    multiplicative_basis,
    primitive_root,
    project_onto_direction,
    project_onto_frequency,
    spectral_entropy,
    sum_directions,
)
from .grid import GridAnalysis, as_grid
from .pairs import ObservedPairs, observed_pairs, require_full_grid
from .spectra import (
    CLUSTER_THRESHOLD,
    KEY_FREQUENCY_THRESHOLD,
    NeuronFrequencies,
    embedding_spectrum,
    fourier_entropy,
    key_frequencies,
    neuron_activation_spectrum,
    neuron_frequencies,
    neuron_input_spectrum,
    neuron_logit_spectrum,
    resolve_basis,
    select_frequencies,
)
from ..models import neuron_input_weights

__all__ = [
    "CLUSTER_THRESHOLD",
    "KEY_FREQUENCY_THRESHOLD",
    "FourierBasis",
    "GridAnalysis",
    "NeuronFrequencies",
    "ObservedPairs",
    "as_grid",
    "basis_for_op",
    "embedding_spectrum",
    "fft1d",
    "fft2d",
    "fourier_2d_basis_term",
    "fourier_basis",
    "fourier_entropy",
    "frequency_power",
    "frequency_power_2d",
    "get_basis",
    "ifft1d",
    "ifft2d",
    "key_frequencies",
    "multiplicative_basis",
    "neuron_activation_spectrum",
    "neuron_frequencies",
    "neuron_input_spectrum",
    "neuron_input_weights",
    "neuron_logit_spectrum",
    "observed_pairs",
    "primitive_root",
    "project_onto_direction",
    "project_onto_frequency",
    "require_full_grid",
    "resolve_basis",
    "select_frequencies",
    "spectral_entropy",
    "sum_directions",
]
