import pytest

from ser_utils.labels import EMOTIONS, UnknownLabelError, canonical_emotion, parse_tess_name


@pytest.mark.parametrize(
    "name, expected",
    [
        ("OAF_back_angry.wav", ("OAF", "back", "angry")),
        ("YAF_germ_ps.wav", ("YAF", "germ", "pleasant_surprise")),
        ("oaf_Food_FEAR.WAV", ("OAF", "food", "fear")),
        ("YAF_bar_pleasant_surprised.wav", ("YAF", "bar", "pleasant_surprise")),
        ("OAF_bar_Pleasant_surprise.wav", ("OAF", "bar", "pleasant_surprise")),
        ("OA_bite_neutral.wav", ("OAF", "bite", "neutral")),  # Kaggle typo: still OAF
        ("SYNA_back_sad.wav", ("SYNA", "back", "sad")),
        ("some/dir/YAF_dog_disgust.wav", ("YAF", "dog", "disgust")),
        ("YAF_dog_happy", ("YAF", "dog", "happy")),
    ],
)
def test_parse_every_spelling(name, expected):
    p = parse_tess_name(name)
    assert (p.speaker, p.word, p.emotion) == expected
    assert p.emotion in EMOTIONS


@pytest.mark.parametrize("name", ["YAF_dog_bored.wav", "notes.wav", "YAF_dog.wav", "YAF__happy.wav"])
def test_unknown_or_malformed_names_are_refused_not_guessed(name):
    with pytest.raises(UnknownLabelError):
        parse_tess_name(name)


def test_seven_canonical_labels_in_fixed_order():
    assert EMOTIONS == ("angry", "disgust", "fear", "happy", "neutral", "pleasant_surprise", "sad")
    assert {canonical_emotion(x) for x in ["Fear", "PS", "sad", "Pleasant_Surprised"]} == {
        "fear", "pleasant_surprise", "sad"}
