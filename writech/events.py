"""The input contract (SPEC §1) as msgspec Structs, and the decoder.

`EventDecoder.decode` turns the raw bytes of one message into an `Event`
or raises `Invalid` with a machine-readable reason and a human message;
`EventDecoder.decode_batch` does that for a `RawBatch` and turns every
failure into a dead-letter row, so nothing read is ever dropped (SPEC §2).
No input makes the decoder raise anything else: a message is an event or
a dead letter, whatever its bytes, size, nesting or numbers.

A valid message is decoded in one msgspec call (a tagged union on
`event_type`, envelope and payload at once); only a message that fails it
is decoded again, field by field, to say precisely why.
"""

from __future__ import annotations

import base64
import hashlib
import time
from datetime import timedelta, tzinfo
from typing import Annotated, Final, Literal, cast

import msgspec
import xxhash
from msgspec import Meta, Raw, Struct

from writech.schema import DeadLetterRow
from writech.timestamps import TimestampError, TimestampParser

Reason = Literal[
    "bad_json",  # not UTF-8 JSON text (anywhere in it), empty, or nested too deep
    "not_an_object",  # valid JSON whose top level is not an object
    "missing_field",  # a required field absent, null or empty
    "bad_field",  # an envelope field of the wrong type or too long
    "unknown_event_type",
    "bad_timestamp",  # outside the grammar of `writech.timestamps`, the stores' range, or too far ahead
    "bad_payload",  # payload not an object, or a field of wrong type or range
    "too_large",
    "too_late",  # its date was already evicted from state (SPEC §5)
    "broker_error",  # the Kafka consumer reported an error instead of a message
    "damaged_input",  # the rest of an input file could not be read (truncated or corrupt)
    "forgotten",  # its student's data was deleted on request (`writech forget`): raw not kept
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

Count = Annotated[int, Meta(ge=0, le=MAX_COUNT)]
Percent = Annotated[float, Meta(ge=0, le=100)]
Positive = Annotated[float, Meta(gt=0, le=1.7976931348623157e308)]
NonNegative = Annotated[float, Meta(ge=0, le=1.7976931348623157e308)]


# U+FEFF in UTF-8: the byte order mark Windows editors start a UTF-8 file with.
UTF8_BOM: Final = b"\xef\xbb\xbf"


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

# -- messages: envelope and payload in one decode ---------------------------


class _Message(Struct, tag_field="event_type", gc=False):
    """A message as it arrives, decoded with its payload; one subclass per event type.

    Required fields have no default here: a message missing one fails this
    decode and is diagnosed by the field-by-field path.
    """

    student_id: str
    timestamp: str
    class_id: str = ""
    school_id: str = ""
    source: str = ""
    event_id: str | None = None


class _StrokeRawMessage(_Message, tag="stroke_raw", gc=False):
    payload: StrokeRaw = StrokeRaw()


class _GradeResultMessage(_Message, tag="grade_result", gc=False):
    payload: GradeResult = GradeResult()


class _HomeworkSubmitMessage(_Message, tag="homework_submit", gc=False):
    payload: HomeworkSubmit = HomeworkSubmit()


class _OcrResultMessage(_Message, tag="ocr_result", gc=False):
    payload: OcrResult = OcrResult()


class _StrokeOrderMessage(_Message, tag="stroke_order", gc=False):
    payload: StrokeOrder = StrokeOrder()


class _WritingQualityMessage(_Message, tag="writing_quality", gc=False):
    payload: WritingQuality = WritingQuality()


class _ExamScoreMessage(_Message, tag="exam_score", gc=False):
    payload: ExamScore = ExamScore()


class _LoginEventMessage(_Message, tag="login_event", gc=False):
    payload: LoginEvent = LoginEvent()


_AnyMessage = (
    _StrokeRawMessage
    | _GradeResultMessage
    | _HomeworkSubmitMessage
    | _OcrResultMessage
    | _StrokeOrderMessage
    | _WritingQualityMessage
    | _ExamScoreMessage
    | _LoginEventMessage
)

# -- envelope, for the diagnosis of a message that is not an event ------------


class Envelope(Struct, gc=False):
    """The outer object as it arrives, payload still raw: what a diagnosis reads.

    Required fields default to None so that their absence is reported as
    `missing_field`, not as a generic decoding error.
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
    produced_at: float  # when its message was produced (RawBatch.produced_at)


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
    rejected: list[DeadLetterRow] = []
    produced_at: list[float] = []


# Where a path in a msgspec error points to an envelope field, the reason
# for a wrong value there.
_FIELD_REASONS: Final[dict[str, Reason]] = {"timestamp": "bad_timestamp"}
# Payloads with a score that may not exceed their total_score.
_SCORED: Final = frozenset({GradeResult, ExamScore})
# Distinct ids the decoder shares before it starts over (students, classes, schools).
_SHARED_IDS_LIMIT: Final = 1 << 18


def too_large(size: int, limit: int) -> Invalid:
    """Why a message of `size` bytes is refused (also said by a source that never held it whole)."""
    return Invalid("too_large", f"message of {size} bytes exceeds the limit of {limit} bytes")


def event_id_of(raw: bytes) -> str:
    """The id of an event that carries none: a strong hash of all its bytes."""
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def is_text(value: str) -> bool:
    """Whether a message could carry `value`: UTF-8 text, without the lone surrogates in which
    Python keeps bytes that are not UTF-8 (from a command line or a file's name)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


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
    produced_at: float | None = None,
) -> DeadLetterRow:
    """A `dead_letter` row keeping the raw bytes (base64 when not UTF-8).

    `produced_at` is when the message was produced, in seconds (the wall
    clock now where a source has no such time for what it rejects).
    """
    try:
        text, encoding = raw.decode(), "utf8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(raw).decode(), "base64"
    produced = time.time() if produced_at is None else produced_at
    micros = round(produced * 1_000_000)
    return (origin, partition, offset, reason, message, text, encoding, event_id, micros)


def raw_of(text: str, encoding: str) -> bytes:
    """A dead letter's message bytes from its `raw` and `raw_encoding` (as `dead_letter` wrote them)."""
    return base64.b64decode(text) if encoding == "base64" else text.encode()


class EventDecoder:
    """Decodes and validates messages against SPEC §1.

    `tz` reads naive timestamps and defines the local date; events more
    than `max_future_skew` ahead of the time their message was produced
    and messages over `max_message_bytes` are invalid.
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
        self._messages = msgspec.json.Decoder(_AnyMessage)
        self._envelope = msgspec.json.Decoder(Envelope)
        self._skew_us = round(max_future_skew.total_seconds() * 1_000_000)
        self._timestamps = TimestampParser(tz)
        self._payloads = {name: msgspec.json.Decoder(cls) for name, cls in PAYLOAD_TYPES.items()}
        self._student = msgspec.json.Decoder(_Student)
        # One shared string per student, class and school id (see `decode`).
        self._ids: dict[str, str] = {}

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
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            # (ValidationError is a DecodeError)
            return ""

    def decode(
        self,
        raw: bytes,
        origin: str = "",
        partition: int = 0,
        offset: int = 0,
        now: float | None = None,
    ) -> Event:
        """Decode one message; raises `Invalid` saying why it is not an event.

        `now` is the reference of the future-skew check: the time the message
        was produced (the wall clock when None).
        """
        if len(raw) > self.max_message_bytes:
            raise too_large(len(raw), self.max_message_bytes)
        if not raw.isascii():
            # msgspec checks only the strings it decodes: the fields this
            # contract ignores must be UTF-8 text too
            try:
                raw.decode()
            except UnicodeDecodeError as exc:
                raise Invalid("bad_json", f"not UTF-8: {exc}") from None
        now = time.time() if now is None else now
        try:
            message: _AnyMessage = self._messages.decode(raw)
        except (msgspec.DecodeError, RecursionError):
            raise self._diagnose(raw, now) from None
        student_id, timestamp = message.student_id, message.timestamp
        if not student_id or not timestamp:
            raise self._diagnose(raw, now)
        if len(student_id) > MAX_STUDENT_ID_CHARS:
            _check_student(student_id)  # raises, saying why
        time_us, day = self._event_time(timestamp, now)
        payload = message.payload
        # a set lookup by type: cheaper, once per message, than isinstance on a union
        if type(payload) in _SCORED:
            scored = cast(GradeResult | ExamScore, payload)
            if scored.score > scored.total_score:
                raise Invalid(
                    "bad_payload",
                    f"payload: score {scored.score} is above total_score {scored.total_score}",
                )
        event_id = message.event_id or event_id_of(raw)
        # Each message brings its own copies of its ids; the events, rows and
        # windows share one string per id instead. Arrow then reads a few
        # thousand strings that stay in cache, not three cold ones per row (a
        # fifth of the cost per value), and the state keeps each id once.
        ids = self._ids
        if len(ids) >= _SHARED_IDS_LIMIT:
            ids.clear()  # a flood of new ids: sharing starts over, bounded
        student_id = ids.setdefault(student_id, student_id)
        class_id, school_id = message.class_id, message.school_id
        # positional: an event per message, where keywords cost a third more
        return Event(
            event_id,
            dedup_key_of(student_id, event_id),
            student_id,
            ids.setdefault(class_id, class_id),
            ids.setdefault(school_id, school_id),
            time_us,
            day,
            payload,
            origin,
            partition,
            offset,
            raw,
            now,
        )

    def decode_batch(
        self, batch: RawBatch, now: float | None = None
    ) -> tuple[list[Event], list[DeadLetterRow]]:
        """Decode every message of a batch; failures become dead letters.

        `now` stands in for the batch's `produced_at` where the source gave none.
        """
        now = time.time() if now is None else now
        events: list[Event] = []
        dead: list[DeadLetterRow] = list(batch.rejected)
        origin, partition = batch.origin, batch.partition
        clocks = batch.produced_at or [now] * len(batch.messages)
        for offset, raw, clock in zip(batch.offsets, batch.messages, clocks, strict=True):
            try:
                events.append(self.decode(raw, origin, partition, offset, clock))
            except Invalid as exc:
                if exc.reason == "too_large":
                    raw = raw[: self.max_message_bytes]
                dead.append(
                    dead_letter(
                        origin, partition, offset, raw, exc.reason, exc.message, produced_at=clock
                    )
                )
        return events, dead

    def _diagnose(self, raw: bytes, now: float) -> Invalid:
        """Why a UTF-8 message of allowed size is not an event, field by field.

        The checks run in the contract's order (envelope, event type,
        student, timestamp, payload), so a message breaking several rules
        always gets the same reason.
        """
        try:
            envelope = self._decode_envelope(raw)
            event_type = _required(envelope.event_type, "event_type")
            decode_payload = self._payloads.get(event_type)
            if decode_payload is None:
                return Invalid(
                    "unknown_event_type",
                    f"event_type {event_type!r} is not one of {', '.join(EVENT_TYPES)}",
                )
            _check_student(_required(envelope.student_id, "student_id"))
            self._event_time(_required(envelope.timestamp, "timestamp"), now)
            decode_payload.decode(envelope.payload)
        except Invalid as exc:
            return exc
        except msgspec.ValidationError as exc:
            return Invalid("bad_payload", f"payload: {exc}")
        except RecursionError:
            return Invalid("bad_json", "nested too deeply: more levels than the decoder allows")
        # Not reached for any input the union rejects; said plainly if it ever is.
        return Invalid("bad_json", "not a valid event message")

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
            if raw.startswith(UTF8_BOM):
                message = (
                    "starts with a byte order mark (U+FEFF), which a JSON message must not "
                    "carry (RFC 8259); only a file may start with one"
                )
            raise Invalid("bad_json", message) from None

    def _event_time(self, text: str, now: float) -> tuple[int, int]:
        """Epoch microseconds and local date ordinal of a timestamp, checked against `now`."""
        try:
            time_us, day = self._timestamps.parse(text)
        except TimestampError as exc:
            raise Invalid("bad_timestamp", str(exc)) from None
        if time_us > now * 1_000_000 + self._skew_us:
            raise Invalid(
                "bad_timestamp",
                f"timestamp {text!r} is more than {self.max_future_skew} ahead of the time "
                "its message was produced",
            )
        return time_us, day


def _check_student(student_id: str) -> None:
    if len(student_id) > MAX_STUDENT_ID_CHARS:
        raise Invalid(
            "bad_field",
            f"student_id has {len(student_id)} characters, more than {MAX_STUDENT_ID_CHARS}",
        )


def _required(value: str | None, name: str) -> str:
    if not value:
        state = "empty" if value == "" else "missing or null"
        raise Invalid("missing_field", f"required field {name!r} is {state}")
    return value
