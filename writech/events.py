"""The input contract (SPEC §1) as msgspec Structs, and the decoder.

`EventDecoder.decode` turns the raw bytes of one message into an `Event`
or raises `Invalid` with a machine-readable reason and a human message;
`EventDecoder.decode_batch` does that for a `RawBatch` and turns every
failure into a dead-letter row, so nothing read is ever dropped (SPEC §2).
"""

from __future__ import annotations

import base64
import hashlib
import time
from datetime import date, datetime, timedelta, tzinfo
from typing import Annotated, Final, Literal

import msgspec
import xxhash
from msgspec import Meta, Raw, Struct

from writech.schema import DeadLetter

Reason = Literal[
    "bad_json",  # not JSON, not UTF-8, or empty
    "not_an_object",  # valid JSON whose top level is not an object
    "missing_field",  # a required field absent, null or empty
    "bad_field",  # an envelope field of the wrong type or too long
    "unknown_event_type",
    "bad_timestamp",  # not ISO 8601, before 1970, or too far in the future
    "bad_payload",  # payload not an object, or a field of wrong type or range
    "too_large",
    "too_late",  # its date was already evicted from state (SPEC §5)
    "broker_error",  # the Kafka consumer reported an error instead of a message
    "damaged_input",  # the rest of an input file could not be read (truncated or corrupt)
]

EVENT_TYPES: Final = (
    "stroke_raw",
    "grade_result",
    "homework_submit",
    "ocr_result",
    "stroke_order",
    "writing_quality",
    "exam_score",
    "login_event",
)

MAX_STUDENT_ID_CHARS: Final = 64
# Counts are bounded so that per-day sums always fit ClickHouse's Int64.
MAX_COUNT: Final = 2**31 - 1
# Averaged values are summed as exact integers of millionths (see
# `writech.aggregate`); this bound keeps `value * 1e6` a finite float.
MAX_SPEED: Final = 1e300
MIN_DATE: Final = date(1970, 1, 1)  # ClickHouse's Date starts here

Count = Annotated[int, Meta(ge=0, le=MAX_COUNT)]
Percent = Annotated[float, Meta(ge=0, le=100)]
Positive = Annotated[float, Meta(gt=0, le=1.7976931348623157e308)]
NonNegative = Annotated[float, Meta(ge=0, le=1.7976931348623157e308)]


class Invalid(Exception):
    """A message breaks the contract; `reason` says how, machine-readably."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.message = message


# -- payloads ---------------------------------------------------------------


class ErrorItem(Struct, frozen=True, gc=False):
    question_id: str = ""
    knowledge_point: str = ""
    error_type: str = ""


class StrokeRaw(Struct, frozen=True, gc=False):
    stroke_count: Count = 0
    page_id: str = ""
    subject: str = "unknown"


class GradeResult(Struct, frozen=True, gc=False):
    score: NonNegative = 0.0
    total_score: Positive = 100.0
    subject: str = "unknown"
    homework_id: str = ""
    errors: tuple[ErrorItem, ...] = ()


class HomeworkSubmit(Struct, frozen=True, gc=False):
    subject: str = "unknown"
    time_cost_minutes: Annotated[int, Meta(ge=0, le=1440)] = 0


class OcrResult(Struct, frozen=True, gc=False):
    confidence: Annotated[float, Meta(ge=0, le=1)] = 0.0
    char_count: Count = 0


class StrokeOrder(Struct, frozen=True, gc=False):
    score: Percent = 0.0
    character: str = ""


class WritingQuality(Struct, frozen=True, gc=False):
    quality_score: Percent = 0.0
    speed: Annotated[float, Meta(ge=0, le=MAX_SPEED)] = 0.0


class ExamScore(Struct, frozen=True, gc=False):
    score: NonNegative = 0.0
    total_score: Positive = 100.0
    subject: str = "unknown"
    exam_id: str = ""


class LoginEvent(Struct, frozen=True, gc=False):
    pass


Payload = (
    StrokeRaw
    | GradeResult
    | HomeworkSubmit
    | OcrResult
    | StrokeOrder
    | WritingQuality
    | ExamScore
    | LoginEvent
)

PAYLOAD_TYPES: Final[dict[str, type[Payload]]] = {
    "stroke_raw": StrokeRaw,
    "grade_result": GradeResult,
    "homework_submit": HomeworkSubmit,
    "ocr_result": OcrResult,
    "stroke_order": StrokeOrder,
    "writing_quality": WritingQuality,
    "exam_score": ExamScore,
    "login_event": LoginEvent,
}

# -- envelope ---------------------------------------------------------------


class Envelope(Struct, gc=False):
    """The outer object as it arrives.

    Required fields default to None so that their absence is reported as
    `missing_field` by `decode`, not as a generic decoding error.
    """

    event_type: str | None = None
    student_id: str | None = None
    timestamp: str | None = None
    class_id: str = ""
    school_id: str = ""
    source: str = ""
    event_id: str | None = None
    payload: Raw = Raw(b"{}")  # decoded per event type, once the type is known


class _Student(Struct, gc=False):
    """Only the student of a message: what routes it before it is decoded."""

    student_id: str | None = None


class Event(Struct, frozen=True, gc=False):
    """A valid event, normalised: what the aggregation consumes."""

    event_id: str
    dedup_key: int  # 64-bit hash of (student_id, event_id): compact in state
    event_type: str
    student_id: str
    class_id: str
    school_id: str
    time_us: int  # event time, microseconds since the Unix epoch (UTC)
    day: int  # local date in the school time zone, as date.toordinal()
    payload: Payload
    origin: str  # where it was read: file path or Kafka topic
    partition: int  # Kafka partition; 0 for files
    offset: int  # Kafka offset or 1-based line number
    raw: bytes  # kept for a possible `too_late` dead letter


class RawBatch(Struct, frozen=True):
    """Messages read together from one origin, with their positions.

    `rejected` carries what the source itself could not read as a message
    (a Kafka consumer error, say), already as dead letters.

    `produced_at` holds, per message, the time it was produced, in seconds
    since the epoch (a Kafka record's timestamp; a file's modification
    time): the reference of the future-skew check (SPEC §1). It is part of
    the input, so a message re-read after a resume is judged exactly as it
    was before the crash. Empty: the wall clock at decoding (only for
    callers with no such time, such as tests).
    """

    origin: str
    partition: int
    offsets: list[int]
    messages: list[bytes]
    rejected: list[DeadLetter] = []
    produced_at: list[float] = []


# Where a path in a msgspec error points to an envelope field, the reason
# for a wrong value there.
_FIELD_REASONS: Final[dict[str, Reason]] = {"timestamp": "bad_timestamp"}
_EPOCH_DAY: Final = date(1970, 1, 1).toordinal()
_MIN_DAY: Final = MIN_DATE.toordinal()
_VARIES: Final = -(10**9)  # marks a quarter hour holding a zone transition


def event_id_of(raw: bytes) -> str:
    """The id of an event that carries none: a strong hash of all its bytes."""
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def dedup_key_of(student_id: str, event_id: str) -> int:
    """The 64-bit key that dedups an event in state (compact, and stable across processes).

    It is scoped to the student, so one reused id can't hide another's event.
    """
    return xxhash.xxh3_64_intdigest(f"{student_id}\x1f{event_id}".encode())


def dead_letter(
    origin: str,
    partition: int,
    offset: int,
    raw: bytes,
    reason: Reason,
    message: str,
    event_id: str = "",
) -> DeadLetter:
    """A dead-letter row keeping the raw bytes (base64 when not UTF-8)."""
    try:
        text, encoding = raw.decode(), "utf8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(raw).decode(), "base64"
    return DeadLetter(
        origin=origin,
        partition=partition,
        offset=offset,
        reason=reason,
        message=message,
        raw=text,
        raw_encoding=encoding,
        event_id=event_id,
    )


class EventDecoder:
    """Decodes and validates messages against SPEC §1.

    `tz` reads naive timestamps and defines the local date; events more
    than `max_future_skew` ahead of the wall clock and messages over
    `max_message_bytes` are invalid.
    """

    def __init__(
        self,
        tz: tzinfo,
        max_future_skew: timedelta = timedelta(days=1),
        max_message_bytes: int = 1 << 20,
    ) -> None:
        self.tz = tz
        self.max_future_skew = max_future_skew
        self.max_message_bytes = max_message_bytes
        self._envelope = msgspec.json.Decoder(Envelope)
        self._skew_seconds = max_future_skew.total_seconds()
        self._offsets: dict[int, int] = {}  # quarter hour since the epoch -> UTC offset
        self._payloads = {name: msgspec.json.Decoder(cls) for name, cls in PAYLOAD_TYPES.items()}
        self._student = msgspec.json.Decoder(_Student)

    def student_of(self, raw: bytes) -> str:
        """The student a message names, read without decoding the rest ("" if none can be read).

        It picks the worker that decodes the message, so that raw bytes,
        not decoded events, travel between workers; a message that is not
        a valid event fails `decode` wherever it lands.
        """
        if len(raw) > self.max_message_bytes:
            return ""
        try:
            return self._student.decode(raw).student_id or ""
        except (msgspec.DecodeError, UnicodeDecodeError):  # ValidationError is a DecodeError
            return ""

    def decode(
        self,
        raw: bytes,
        origin: str = "",
        partition: int = 0,
        offset: int = 0,
        now: float | None = None,
    ) -> Event:
        """Decode one message; raises `Invalid` saying why it is not an event."""
        if len(raw) > self.max_message_bytes:
            raise Invalid(
                "too_large",
                f"message of {len(raw)} bytes exceeds the limit of {self.max_message_bytes} bytes",
            )
        envelope = self._decode_envelope(raw)
        event_type = _required(envelope.event_type, "event_type")
        decode_payload = self._payloads.get(event_type)
        if decode_payload is None:
            raise Invalid(
                "unknown_event_type",
                f"event_type {event_type!r} is not one of {', '.join(EVENT_TYPES)}",
            )
        student_id = _required(envelope.student_id, "student_id")
        if len(student_id) > MAX_STUDENT_ID_CHARS:
            raise Invalid(
                "bad_field",
                f"student_id has {len(student_id)} characters, more than {MAX_STUDENT_ID_CHARS}",
            )
        time_us, day = self._event_time(
            _required(envelope.timestamp, "timestamp"),
            time.time() if now is None else now,
        )
        try:
            payload = decode_payload.decode(envelope.payload)
        except msgspec.ValidationError as exc:
            raise Invalid("bad_payload", f"payload: {exc}") from None
        except UnicodeDecodeError as exc:
            raise Invalid("bad_json", f"payload is not UTF-8: {exc}") from None
        if isinstance(payload, GradeResult | ExamScore) and payload.score > payload.total_score:
            raise Invalid(
                "bad_payload",
                f"payload: score {payload.score} is above total_score {payload.total_score}",
            )
        event_id = envelope.event_id or event_id_of(raw)
        return Event(
            event_id=event_id,
            dedup_key=dedup_key_of(student_id, event_id),
            event_type=event_type,
            student_id=student_id,
            class_id=envelope.class_id,
            school_id=envelope.school_id,
            time_us=time_us,
            day=day,
            payload=payload,
            origin=origin,
            partition=partition,
            offset=offset,
            raw=raw,
        )

    def decode_batch(
        self, batch: RawBatch, now: float | None = None
    ) -> tuple[list[Event], list[DeadLetter]]:
        """Decode every message of a batch; failures become dead letters."""
        now = time.time() if now is None else now
        events: list[Event] = []
        dead: list[DeadLetter] = list(batch.rejected)
        origin, partition = batch.origin, batch.partition
        clocks = batch.produced_at or [now] * len(batch.messages)
        for offset, raw, clock in zip(batch.offsets, batch.messages, clocks, strict=True):
            try:
                events.append(self.decode(raw, origin, partition, offset, clock))
            except Invalid as exc:
                if exc.reason == "too_large":
                    raw = raw[: self.max_message_bytes]
                dead.append(dead_letter(origin, partition, offset, raw, exc.reason, exc.message))
        return events, dead

    def _decode_envelope(self, raw: bytes) -> Envelope:
        try:
            return self._envelope.decode(raw)
        except msgspec.ValidationError as exc:
            text = str(exc)
            field = text.partition(" - at `$.")[2].partition("`")[0].split(".")[0]
            if not field:  # no path: the top level itself is not an object
                raise Invalid("not_an_object", text) from None
            if field == "payload":
                raise Invalid("bad_payload", text) from None
            raise Invalid(_FIELD_REASONS.get(field, "bad_field"), text) from None
        except msgspec.DecodeError as exc:
            message = str(exc) if raw.strip() else "empty message"
            raise Invalid("bad_json", message) from None
        except UnicodeDecodeError as exc:
            raise Invalid("bad_json", f"not UTF-8: {exc}") from None

    def _event_time(self, text: str, now: float) -> tuple[int, int]:
        """Epoch microseconds and local date ordinal of an ISO 8601 timestamp."""
        try:
            parsed = datetime.fromisoformat(text)
            if parsed.tzinfo is None:  # local wall time: its date is the local date
                day = parsed.toordinal()
                seconds = parsed.replace(tzinfo=self.tz).timestamp()
            else:
                seconds = parsed.timestamp()
                day = self._local_day(seconds)
        except ValueError:
            raise Invalid("bad_timestamp", f"timestamp {text!r} is not ISO 8601") from None
        except OverflowError:  # year 1 or 9999 shifted past the calendar's ends
            raise Invalid("bad_timestamp", f"timestamp {text!r} is out of range") from None
        if day < _MIN_DAY:
            raise Invalid("bad_timestamp", f"timestamp {text!r} is before 1970")
        if seconds > now + self._skew_seconds:
            raise Invalid(
                "bad_timestamp",
                f"timestamp {text!r} is more than {self.max_future_skew} ahead of the wall clock",
            )
        return round(seconds * 1_000_000), day

    def _local_day(self, seconds: float) -> int:
        """The local date of an instant, via a cache of UTC offsets per quarter hour.

        Zone transitions happen at most once in a quarter hour, so where the
        offsets at both ends of one agree they hold throughout it; where they
        differ, the exact conversion is done.
        """
        bucket = int(seconds // 900)
        offset = self._offsets.get(bucket)
        if offset is None:
            start = datetime.fromtimestamp(bucket * 900, self.tz).utcoffset()
            end = datetime.fromtimestamp(bucket * 900 + 899, self.tz).utcoffset()
            offset = self._offsets[bucket] = (
                int(start.total_seconds()) if start == end and start is not None else _VARIES
            )
        if offset == _VARIES:
            return datetime.fromtimestamp(seconds, self.tz).toordinal()
        return int((seconds + offset) // 86400) + _EPOCH_DAY


def _required(value: str | None, name: str) -> str:
    if not value:
        state = "empty" if value == "" else "missing or null"
        raise Invalid("missing_field", f"required field {name!r} is {state}")
    return value
