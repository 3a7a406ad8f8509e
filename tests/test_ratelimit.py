"""The shared request-rate limiter: its schedule, what it learns from the API's headers, and Redis."""

import os

import pytest
import redis

from threads_app.models import Credential
from threads_app.ratelimit import Cancelled, MemoryLimiter, RedisLimiter, Throttle, bucket_key


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


def credential(**fields):
    cred = Credential(name="c", base_url="https://api.example.com/v1", project_id="proj_1", **fields)
    cred.api_key = "sk-rate-limit-test-0001"
    return cred


def test_requests_are_spaced_at_the_limit_after_one_second_of_burst(clock):
    limiter = MemoryLimiter(clock)
    waits = [limiter.reserve("p", 600) for _ in range(12)]  # 10 a second
    assert waits[:10] == pytest.approx([0.0] * 10)
    assert waits[10] == pytest.approx(0.1) and waits[11] == pytest.approx(0.2)
    clock.now += 5
    assert limiter.reserve("p", 600) == 0.0, "an idle project starts with its burst again"


def test_a_slow_limit_has_no_burst_and_each_reservation_queues(clock):
    limiter = MemoryLimiter(clock)
    assert [limiter.reserve("p", 60) for _ in range(3)] == [0.0, pytest.approx(1.0), pytest.approx(2.0)]
    assert limiter.reserve("other", 60) == 0.0, "projects are limited apart"


def test_no_known_limit_sends_at_once_but_a_pause_holds_everyone(clock):
    limiter = MemoryLimiter(clock)
    assert limiter.reserve("p", None) == 0.0
    limiter.pause("p", 5)
    assert limiter.reserve("p", None) == pytest.approx(5)
    # The burst (ten requests, 0.9 s ahead of the steady pace) starts when the pause ends.
    assert limiter.reserve("p", 600) == pytest.approx(4.1)


def test_a_learned_limit_expires(clock):
    limiter = MemoryLimiter(clock)
    limiter.learn("p", 500)
    assert limiter.learned("p") == 500
    clock.now += 3601
    assert limiter.learned("p") is None


def test_the_limit_in_force_is_the_lower_of_the_setting_and_the_apis(clock):
    limiter = MemoryLimiter(clock)
    throttle = Throttle(credential(requests_per_minute=3000), limiter)
    assert throttle.per_minute == 3000
    throttle.after_response(
        {"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499"}, 200, None
    )
    assert throttle.per_minute == 500
    assert Throttle(credential(), limiter).per_minute == 500, "what one worker learns, the next one knows"
    throttle.after_response({"x-ratelimit-limit-requests": "junk"}, 200, None)
    assert throttle.per_minute == 500


def test_an_answer_with_no_requests_left_pauses_until_the_next_one(clock):
    limiter = MemoryLimiter(clock)
    throttle = Throttle(credential(), limiter)
    headers = {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "6m0s",
    }
    throttle.after_response(headers, 200, None)
    assert limiter.reserve(throttle.key, None) == pytest.approx(1.0), "one request's worth, not six minutes"


def test_a_429_pauses_the_project_for_the_wait_it_names(clock):
    limiter = MemoryLimiter(clock)
    throttle = Throttle(credential(), limiter)
    throttle.after_response({}, 429, 7.5)
    assert limiter.reserve(throttle.key, None) == pytest.approx(7.5)


def test_a_cancelled_throttle_wakes_its_waiting_requests(clock):
    limiter = MemoryLimiter(clock)
    limiter.pause("unused", 0)
    throttle = Throttle(credential(requests_per_minute=1), limiter)
    throttle.before_request()
    throttle.cancel()
    with pytest.raises(Cancelled):
        throttle.before_request()


def test_the_bucket_is_the_project_and_never_the_key():
    a, b = credential(), credential()
    b.api_key = "sk-another-key-of-proj1"
    assert bucket_key(a) == bucket_key(b) == "api.example.com/v1|-|proj_1"
    a.project_id = b.project_id = ""
    assert bucket_key(a) != bucket_key(b)
    assert "sk-" not in bucket_key(a) and "rate-limit-test" not in bucket_key(a)


@pytest.mark.integration
def test_redis_keeps_one_schedule_for_every_process():
    url = os.environ.get("THREADSITE_TEST_REDIS_URL")
    assert url, "Set THREADSITE_TEST_REDIS_URL (scripts/test does)"
    redis.Redis.from_url(url).flushdb()
    first, second = RedisLimiter(url), RedisLimiter(url)  # as two workers would hold them
    waits = [limiter.reserve("p", 60) for limiter in (first, second, first)]
    assert waits[0] == 0.0
    assert waits[1] == pytest.approx(1.0, abs=0.05) and waits[2] == pytest.approx(2.0, abs=0.05)
    second.pause("q", 3)
    assert first.reserve("q", None) == pytest.approx(3.0, abs=0.05)
    first.learn("p", 900)
    assert second.learned("p") == 900


@pytest.mark.integration
def test_with_no_known_limit_a_process_reads_the_projects_pause_from_redis_at_most_every_poll(clock):
    url = os.environ.get("THREADSITE_TEST_REDIS_URL")
    assert url, "Set THREADSITE_TEST_REDIS_URL (scripts/test does)"
    redis.Redis.from_url(url).flushdb()
    first, second = RedisLimiter(url, clock=clock), RedisLimiter(url, clock=clock)
    reads = []
    script = first._reserve
    first._reserve = lambda **kwargs: reads.append(kwargs) or script(**kwargs)
    assert [first.reserve("r", None) for _ in range(50)] == [0.0] * 50
    assert len(reads) == 1, "one round trip for a poll's worth of requests"
    second.pause("r", 3)
    assert second.reserve("r", None) == pytest.approx(3.0, abs=0.05)  # the process that paused: at once
    assert first.reserve("r", None) == 0.0  # the others: within a poll
    clock.now += RedisLimiter.PAUSE_POLL
    assert first.reserve("r", None) == pytest.approx(3.0, abs=0.05) and len(reads) == 2
    clock.now += RedisLimiter.PAUSE_POLL / 2  # within the next poll, the pause read counts down
    assert first.reserve("r", None) == pytest.approx(3.0 - RedisLimiter.PAUSE_POLL / 2, abs=0.03)
    assert len(reads) == 2
    # A known limit is never served from the poll: each request takes its own place in the schedule.
    assert [first.reserve("s", 60) for _ in range(2)] == [0.0, pytest.approx(1.0, abs=0.05)]
    assert len(reads) == 4


def test_take_counts_a_request_only_when_it_may_go_now(clock):
    limiter = MemoryLimiter(clock)
    assert [limiter.take("t", 60, burst_seconds=3) for _ in range(3)] == [0.0, 0.0, 0.0]
    refused = limiter.take("t", 60, burst_seconds=3)
    assert refused == pytest.approx(1.0)
    assert limiter.take("t", 60, burst_seconds=3) == pytest.approx(1.0)  # a refusal costs nothing
    clock.now += 1.0
    assert limiter.take("t", 60, burst_seconds=3) == 0.0


@pytest.mark.integration
def test_redis_take_refuses_without_counting():
    url = os.environ.get("THREADSITE_TEST_REDIS_URL")
    assert url, "Set THREADSITE_TEST_REDIS_URL (scripts/test does)"
    redis.Redis.from_url(url).flushdb()
    first, second = RedisLimiter(url), RedisLimiter(url)
    assert first.take("t", 60) == 0.0
    assert second.take("t", 60) == pytest.approx(1.0, abs=0.05)
    assert first.take("t", 60) == pytest.approx(1.0, abs=0.05)
