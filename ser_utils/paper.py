"""The figures reported by the paper this course reproduces, for side-by-side tables.

Herath Mudiyanselage, Kumari & Nawarathne (2025), "Speech Emotion Recognition
with Hybrid CNN-LSTM and Transformers Models: Evaluating the Hybrid Model Using
Grad-CAM", IJRCOM 4(II). All figures are test accuracy (%) on the full TESS
(2800 clips) with a random split; the paper reports no speaker-independent score.
"""

PAPER_CITATION = (
    "Herath Mudiyanselage, Kumari & Nawarathne (2025), Speech Emotion Recognition with Hybrid "
    "CNN-LSTM and Transformers Models: Evaluating the Hybrid Model Using Grad-CAM. IJRCOM 4(II)."
)
#: Test accuracy in percent, random split, full TESS, as printed in the paper.
PAPER_ACCURACY: dict[str, float] = {
    "cnn": 95.37,
    "lstm": 98.57,
    "hybrid": 99.01,
    "vit": 98.0,
    "beit": 98.3,
}
PAPER_PROTOCOL = "random"
