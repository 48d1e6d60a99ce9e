import pytest

from ads.models import Ad, Category
from ads.verdicts import SURE_SUGGESTIONS, PhotoVerdict, is_confident, is_sure
from moderation.policy import decide

pytestmark = pytest.mark.django_db
CLASSES = ["laptop", "phone"]
REASON = Ad.ReviewReason


@pytest.fixture
def phone():
    return Category.objects.get(slug="phone")


def verdicts(*pairs):
    return [PhotoVerdict(category, confidence) for category, confidence in pairs]


def test_publishes_when_every_photo_matches_confidently(phone):
    routing = decide(phone, verdicts(("phone", 0.99), ("phone", 0.95)), CLASSES, 0.9)
    assert routing.status == Ad.Status.PUBLISHED
    assert routing.reason == ""


def test_a_confident_mismatch_suggests_the_predicted_category(phone):
    routing = decide(phone, verdicts(("phone", 0.99), ("laptop", 0.97)), CLASSES, 0.9)
    assert (routing.status, routing.reason) == (Ad.Status.NEEDS_REVIEW, REASON.CATEGORY_MISMATCH)
    assert routing.suggested_category.slug == "laptop"


def test_one_unsure_photo_sends_the_ad_to_review(phone):
    routing = decide(phone, verdicts(("phone", 0.99), ("phone", 0.6)), CLASSES, 0.9)
    assert routing.reason == REASON.LOW_CONFIDENCE
    assert routing.suggested_category is None


def test_an_unsure_mismatch_is_low_confidence_with_a_suggestion(phone):
    routing = decide(phone, verdicts(("laptop", 0.6)), CLASSES, 0.9)
    assert routing.reason == REASON.LOW_CONFIDENCE
    assert routing.suggested_category.slug == "laptop"


def test_a_duplicate_photo_goes_to_review_even_when_confident(phone):
    routing = decide(phone, verdicts(("phone", 0.99)), CLASSES, 0.9, has_duplicate=True)
    assert routing.reason == REASON.DUPLICATE_PHOTO


def test_a_category_the_model_does_not_know_goes_to_review(phone):
    tablet = Category.objects.create(slug="tablet", name="Tablets")
    routing = decide(tablet, verdicts(("phone", 0.99)), CLASSES, 0.9)
    assert routing.reason == REASON.UNKNOWN_CATEGORY


def test_a_version_without_threshold_never_publishes(phone):
    routing = decide(phone, verdicts(("phone", 1.0)), CLASSES, None)
    assert routing.status == Ad.Status.NEEDS_REVIEW


def test_an_inactive_category_is_never_suggested(phone):
    Category.objects.filter(slug="laptop").update(active=False)
    routing = decide(phone, verdicts(("laptop", 0.99)), CLASSES, 0.9)
    assert routing.reason == REASON.CATEGORY_MISMATCH
    assert routing.suggested_category is None


def test_what_sellers_are_told_as_sure_follows_the_routings_confidence_test(phone):
    # The threshold is where decide() starts trusting a photo's category, both ways.
    assert is_confident(0.9, 0.9) and not is_confident(0.899, 0.9)
    assert not is_confident(0.99, None)  # a version without a threshold decides nothing
    assert is_sure(PhotoVerdict("laptop", 0.97), 0.9)
    assert not is_sure(PhotoVerdict("laptop", 0.66), 0.9)
    # None of these is a verdict when no category is confident; else it is a doubt.
    assert is_sure(PhotoVerdict("phone", 0.7, none_of_these=True), 0.9)
    assert not is_sure(PhotoVerdict("phone", 0.998, none_of_these=True), 0.9)
    # The routing agrees: the unsure mismatch is only low confidence, with no sure suggestion.
    unsure = decide(phone, verdicts(("laptop", 0.66)), CLASSES, 0.9)
    sure = decide(phone, verdicts(("laptop", 0.97)), CLASSES, 0.9)
    assert unsure.reason not in SURE_SUGGESTIONS and sure.reason in SURE_SUGGESTIONS
