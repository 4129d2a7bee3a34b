"""KARD Studio: knowledge-augmented reasoning distillation, as a library, a command line and an app.

Heavy dependencies (torch, transformers, gradio) are imported only by the modules that need them,
so `import kard` stays fast.
"""

from kard.errors import KardError
from kard.records import Hit, Passage, Prediction, Question, Rationale, Sample, Timings

__all__ = ["Hit", "KardError", "Passage", "Prediction", "Question", "Rationale", "Sample", "Timings"]
__version__ = "0.1.0"
