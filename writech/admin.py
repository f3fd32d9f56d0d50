"""Day-2 commands: dead letters, a producer's files checked, a student's data deleted.

- `writech dead-letters summary|list|export` select dead letters by reason,
  origin, when their message was produced (`--since`, `--until`) and
  position (`--letter ORIGIN:PARTITION:OFFSET`), and count, show or export
  them. An export is JSON lines, one letter per line: its position, reason
  and error, and the message itself as `value` (JSON) or `raw` (text, or
  base64 when it is not UTF-8), ready to be corrected.
- `writech dead-letters redrive FILE` produces the corrected messages of
  such a file to the input topic, once each: every message is decoded as
  the dataflow would first, and nothing is sent if one is still invalid; a
  letter already re-driven is skipped (`--again` sends it anyway, and the
  dataflow counts an event it has counted as a duplicate). Each re-drive
  the broker acknowledged is recorded in `dead_letter_redrive`, even when
  others failed (each named by its line), so that a second run sends only
  those; the dead letter itself stays, as the record of what happened.
- `writech validate FILE...` decodes files exactly as the dataflow would
  (`EventDecoder`, the files source's lines, a file's modification time as
  the future-skew reference) and reports, per reason, what would be
  dead-lettered, with examples, and the duplicates; it writes nothing.
- `writech forget STUDENT...` deletes a student's rows from every table
  that holds them (`dead_letter`: the letters whose message names the
  student), checks that none is left, records the request (a hash of the
  id, its time, the rows removed per table) in `forget_requests` and logs
  it. The dataflow forgets the student's state when it next starts.

Exit codes: 0 done, 1 something to fix in the data (letters still invalid,
messages that would be dead-lettered) or messages not delivered, 2 bad
arguments or a missing file.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, Final, Literal

import msgspec

from writech.arguments import (
    input_file,
    non_negative_int,
    output_file,
    positive_int,
    student_id_argument,
)
from writech.events import EventDecoder, Invalid, RawBatch, raw_of
from writech.outputs import written
from writech.schema import (
    CLICKHOUSE_TABLES,
    DATABASE,
    DEAD_LETTER,
    DEAD_LETTER_REDRIVE,
    ERROR_RECORD,
    FORGET_REQUESTS,
    ForgetRequestRow,
    RedriveRow,
)
from writech.settings import PREFIX, Settings, SettingsError, refuse_unless_topic_name

if TYPE_CHECKING:
    from writech.stores.base import ClickHouse

log = logging.getLogger(__name__)

# The tables whose rows are a student's by their `student_id` column. Class
# windows hold sums over a class, no student id: they are kept.
STUDENT_TABLES: Final = tuple(
    table.name for table in CLICKHOUSE_TABLES if "student_id" in table.column_names
)

_LETTERS: Final = f"`{DATABASE}`.`{DEAD_LETTER.name}`"
_REDRIVES: Final = f"`{DATABASE}`.`{DEAD_LETTER_REDRIVE.name}`"
_POSITION: Final = "(origin, partition, offset)"
_PAGE: Final = 10_000  # letters per query of a listing or an export
_REDRIVEN: Final = f"{_POSITION} IN (SELECT origin, partition, offset FROM {_REDRIVES})"


def add_admin_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `dead-letters`, `validate` and `forget` to the `writech` command."""
    stores = argparse.ArgumentParser(add_help=False)
    stores.add_argument(
        "--data-dir", help="where the embedded stores live (default: $WRITECH_DATA_DIR or ./data)"
    )
    selection = argparse.ArgumentParser(add_help=False)
    selection.add_argument(
        "--reason", action="append", default=[], help="only this reason (repeatable)"
    )
    selection.add_argument(
        "--origin", action="append", default=[], help="only this file or topic (repeatable)"
    )
    selection.add_argument(
        "--since",
        metavar="TIME",
        help="only messages produced at or after TIME (ISO 8601; naive: school time zone)",
    )
    selection.add_argument(
        "--until", metavar="TIME", help="only messages produced before TIME (as --since)"
    )
    selection.add_argument(
        "--letter",
        action="append",
        default=[],
        type=_position,
        metavar="ORIGIN:PARTITION:OFFSET",
        help="only this letter (repeatable)",
    )
    selection.add_argument(
        "--not-redriven", action="store_true", help="only letters never re-driven"
    )

    letters = commands.add_parser(
        "dead-letters", help="count, list, export and re-drive dead letters"
    )
    actions = letters.add_subparsers(required=True, metavar="ACTION")
    summary = actions.add_parser(
        "summary", parents=[stores, selection], help="letters per reason and origin"
    )
    summary.add_argument("--format", choices=("text", "json"), default="text")
    summary.set_defaults(run=_summary)
    listing = actions.add_parser(
        "list", parents=[stores, selection], help="the letters, oldest first (no messages)"
    )
    listing.add_argument("--format", choices=("text", "json"), default="text")
    listing.add_argument(
        "--limit", type=positive_int, default=100, help="at most this many (default 100)"
    )
    listing.set_defaults(run=_list)
    export = actions.add_parser(
        "export",
        parents=[stores, selection],
        help="the letters with their messages as JSON lines, to correct and re-drive",
    )
    export.add_argument(
        "-o", "--out", type=output_file, default="-", help="output file, - for stdout (default)"
    )
    export.set_defaults(run=_export)
    redrive = actions.add_parser(
        "redrive",
        parents=[stores],
        help="produce the corrected messages of an export to the input topic",
    )
    redrive.add_argument(
        "file", metavar="FILE", type=input_file, help="an export, corrected; - for stdin"
    )
    redrive.add_argument("--topic", help="default: the first of $WRITECH_KAFKA_TOPICS")
    redrive.add_argument("--again", action="store_true", help="also send letters re-driven before")
    redrive.add_argument("--dry-run", action="store_true", help="check and report, produce nothing")
    redrive.set_defaults(run=_redrive)

    validate = commands.add_parser(
        "validate",
        help="check JSON-lines files as the dataflow would read them; write nothing",
    )
    validate.add_argument("paths", nargs="+", metavar="PATH", help=".jsonl/.jsonl.gz or dirs")
    validate.add_argument("--format", choices=("text", "json"), default="text")
    validate.add_argument(
        "--examples", type=non_negative_int, default=3, help="examples shown per reason (default 3)"
    )
    validate.set_defaults(run=_validate)

    forget = commands.add_parser(
        "forget",
        parents=[stores],
        help="delete students' data from every table, on request (stop the dataflow first)",
    )
    forget.add_argument("students", nargs="+", metavar="STUDENT_ID", type=student_id_argument)
    forget.set_defaults(run=_forget)


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {"data_dir": args.data_dir} if getattr(args, "data_dir", None) else {}
    return Settings.from_env(**overrides)


# -- selecting dead letters ---------------------------------------------------


Int32 = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class Position(msgspec.Struct, frozen=True):
    """Where a dead letter's message was read: its identity."""

    origin: str
    partition: Int32  # the columns' ranges: beyond them a value wrapped around in a
    offset: Int64  # query and named another letter

    def __str__(self) -> str:
        return f"{self.origin}:{self.partition}:{self.offset}"


class Selection(msgspec.Struct, frozen=True):
    """Which dead letters a command is about; empty fields select all."""

    reasons: tuple[str, ...] = ()
    origins: tuple[str, ...] = ()
    since: datetime | None = None  # produced at or after
    until: datetime | None = None  # produced before
    letters: tuple[Position, ...] = ()
    not_redriven: bool = False

    def where(self) -> tuple[str, dict[str, Any]]:
        """The selection as a ClickHouse condition on `dead_letter`, with its parameters."""
        conditions: list[str] = []
        params: dict[str, Any] = {}
        for column, values in (("reason", self.reasons), ("origin", self.origins)):
            if values:
                names = [f"{column}_{number}" for number in range(len(values))]
                params |= dict(zip(names, values, strict=True))
                listed = ", ".join(f"{{{name}:String}}" for name in names)
                conditions.append(f"{column} IN ({listed})")
        for name, bound, operator in (("since", self.since, ">="), ("until", self.until, "<")):
            if bound is not None:
                params[name] = _micros(bound)
                conditions.append(
                    f"produced_at {operator} fromUnixTimestamp64Micro({{{name}:Int64}}, 'UTC')"
                )
        if self.letters:
            tuples = []
            for number, letter in enumerate(self.letters):
                params |= {
                    f"origin_of_{number}": letter.origin,
                    f"partition_of_{number}": letter.partition,
                    f"offset_of_{number}": letter.offset,
                }
                tuples.append(
                    f"({{origin_of_{number}:String}}, {{partition_of_{number}:Int32}}, "
                    f"{{offset_of_{number}:Int64}})"
                )
            conditions.append(f"{_POSITION} IN ({', '.join(tuples)})")
        if self.not_redriven:
            conditions.append(f"NOT {_REDRIVEN}")
        return " AND ".join(conditions) or "1", params


def _selection(args: argparse.Namespace, tz: tzinfo) -> Selection:
    return Selection(
        reasons=tuple(args.reason),
        origins=tuple(args.origin),
        since=_instant(args.since, "--since", tz),
        until=_instant(args.until, "--until", tz),
        letters=tuple(args.letter),
        not_redriven=args.not_redriven,
    )


def _position(text: str) -> Position:
    origin, _, rest = text.rpartition(":")
    origin, _, partition = origin.rpartition(":")
    if not origin or not partition.lstrip("-").isdigit() or not rest.isdigit():
        raise argparse.ArgumentTypeError(f"expected ORIGIN:PARTITION:OFFSET, got {text!r}")
    fields = {"origin": origin, "partition": int(partition), "offset": int(rest)}
    try:
        return msgspec.convert(fields, Position)  # checks the columns' ranges
    except msgspec.ValidationError as exc:
        raise argparse.ArgumentTypeError(f"out of range in {text!r}: {exc}") from None


def _instant(text: str | None, option: str, tz: tzinfo) -> datetime | None:
    if text is None:
        return None
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        raise SettingsError(f"{option}: not an ISO 8601 date or time: {text!r}") from None
    return found if found.tzinfo else found.replace(tzinfo=tz)


def _micros(instant: datetime) -> int:
    return round(instant.timestamp() * 1_000_000)


def _utc(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1_000_000, UTC).isoformat(timespec="microseconds")


# -- dead-letters summary | list | export --------------------------------------


class Group(msgspec.Struct):
    """Dead letters of one reason and origin."""

    reason: str
    origin: str
    letters: int
    redriven: int  # of them, letters re-driven at least once
    first_produced_at: str
    last_produced_at: str


class Listed(msgspec.Struct):
    """One dead letter, without its message."""

    origin: str
    partition: int
    offset: int
    reason: str
    error: str  # the letter's `message`: why it is a dead letter
    produced_at: str
    redriven: bool


class Exported(msgspec.Struct, omit_defaults=True):
    """One line of an export (and of a re-drive's input): a letter and its message.

    The message is `value` when it is JSON (correct it as JSON), `raw`
    otherwise: its text, or its base64 when `raw_encoding` is "base64".
    """

    origin: str
    partition: Int32  # as `Position`'s
    offset: Int64
    reason: str = ""
    error: str = ""
    produced_at: str = ""
    value: Any = msgspec.UNSET
    raw: str | msgspec.UnsetType = msgspec.UNSET
    raw_encoding: Literal["utf8", "base64"] = "utf8"

    @property
    def position(self) -> Position:
        return Position(self.origin, self.partition, self.offset)


def exported(
    position: Position, reason: str, error: str, produced_at: str, raw: str, raw_encoding: str
) -> Exported:
    """A letter as an export line: its message as `value` when it is JSON that
    re-encodes to the same value, else as it was stored."""
    line = Exported(
        position.origin,
        position.partition,
        position.offset,
        reason=reason,
        error=error,
        produced_at=produced_at,
    )
    if raw_encoding == "utf8":
        try:
            value = msgspec.json.decode(raw)
        except (msgspec.DecodeError, RecursionError):
            pass
        else:
            if msgspec.json.decode(msgspec.json.encode(value)) == value:  # no inf, say
                line.value = value
                return line
    line.raw, line.raw_encoding = raw, "base64" if raw_encoding == "base64" else "utf8"
    return line


def message_of(line: Exported) -> bytes:
    """The bytes a corrected line re-drives: `value` as compact JSON, or `raw`."""
    if line.value is not msgspec.UNSET:
        return msgspec.json.encode(line.value)
    if isinstance(line.raw, str):
        return raw_of(line.raw, line.raw_encoding)
    raise ValueError("holds neither `value` nor `raw`")


def _summary(args: argparse.Namespace) -> int:
    from writech.stores.base import open_clickhouse

    settings = _settings(args)
    where, params = _selection(args, settings.tz).where()
    store = open_clickhouse(settings, existing=True)
    try:
        rows = store.query(
            f"SELECT reason, origin, count() AS letters, countIf({_REDRIVEN}) AS redriven, "
            "toUnixTimestamp64Micro(min(produced_at)) AS first, "
            "toUnixTimestamp64Micro(max(produced_at)) AS last "
            f"FROM {_LETTERS} FINAL WHERE {where} "
            "GROUP BY reason, origin ORDER BY letters DESC, reason, origin",
            params,
        )
    finally:
        store.close()
    groups = [
        Group(row["reason"], row["origin"], row["letters"], row["redriven"],
              _utc(row["first"]), _utc(row["last"]))
        for row in rows
    ]  # fmt: skip
    if args.format == "json":
        sys.stdout.buffer.write(msgspec.json.encode(groups) + b"\n")
        return 0
    lines = [f"{'reason':<20} {'letters':>9} {'re-driven':>9}  {'produced':<22}  origin"]
    for group in groups:
        dates = f"{group.first_produced_at[:10]} .. {group.last_produced_at[:10]}"
        lines.append(
            f"{group.reason:<20} {group.letters:>9,} {group.redriven:>9,}  {dates:<22}  "
            f"{group.origin}"
        )
    lines.append(f"{sum(group.letters for group in groups):,} letters")
    print("\n".join(lines))
    return 0


def _letters(
    settings: Settings, selection: Selection, with_messages: bool, limit: int | None = None
) -> Iterator[dict[str, Any]]:
    """The selected letters, oldest first, in pages (an export may be large)."""
    from writech.stores.base import open_clickhouse

    where, params = selection.where()
    columns = "origin, partition, offset, reason, message, "
    columns += "toUnixTimestamp64Micro(produced_at) AS produced_us, "
    columns += "raw, raw_encoding" if with_messages else f"{_REDRIVEN} AS redriven"
    store = open_clickhouse(settings, existing=True)
    try:
        skipped = 0
        while (page := _PAGE if limit is None else min(_PAGE, limit - skipped)) > 0:
            rows = store.query(
                f"SELECT {columns} FROM {_LETTERS} FINAL WHERE {where} "
                "ORDER BY produced_at, origin, partition, offset "
                "LIMIT {page:UInt64} OFFSET {skipped:UInt64}",
                params | {"page": page, "skipped": skipped},
            )
            yield from rows
            if len(rows) < page:
                return
            skipped += page
    finally:
        store.close()


def _list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    listed = [
        Listed(row["origin"], row["partition"], row["offset"], row["reason"], row["message"],
               _utc(row["produced_us"]), bool(row["redriven"]))
        for row in _letters(settings, _selection(args, settings.tz), False, args.limit)
    ]  # fmt: skip
    if args.format == "json":
        out = sys.stdout.buffer
        for letter in listed:
            out.write(msgspec.json.encode(letter) + b"\n")
        return 0
    for letter in listed:
        mark = "re-driven" if letter.redriven else ""
        position = f"{letter.origin}:{letter.partition}:{letter.offset}"
        print(
            f"{letter.produced_at[:19]}  {position}  {letter.reason:<18} {mark:<9}  "
            f"{_shortened(letter.error, 100)}"
        )
    more = " (--limit reached)" if len(listed) == args.limit else ""
    print(f"{len(listed):,} letters{more}")
    return 0


def _export(args: argparse.Namespace) -> int:
    settings = _settings(args)
    rows = _letters(settings, _selection(args, settings.tz), True)
    count = 0
    with written(args.out) as out:
        for row in rows:
            line = exported(
                Position(row["origin"], row["partition"], row["offset"]),
                row["reason"],
                row["message"],
                _utc(row["produced_us"]),
                row["raw"],
                row["raw_encoding"],
            )
            out.write(msgspec.json.encode(line) + b"\n")
            count += 1
    print(f"exported {count:,} letters", file=sys.stderr)
    return 0


@contextmanager
def _binary_input(path: str) -> Iterator[BinaryIO]:
    """The file at `path`, or stdin for "-" (`kubectl exec -i ... redrive -`)."""
    if path == "-":
        yield sys.stdin.buffer
        return
    with open(path, "rb") as file:
        yield file


def _shortened(text: str, width: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


# -- dead-letters redrive ------------------------------------------------------


class Correction(msgspec.Struct, frozen=True):
    """A corrected message ready to be re-driven, and the letter it corrects."""

    line: int  # in the file
    letter: Position
    message: bytes
    student_id: str
    event_id: str  # as the dataflow will identify it


class Problem(msgspec.Struct, frozen=True):
    """A line that cannot be re-driven, and why."""

    line: int
    reason: str  # a dead-letter reason, or "bad_line" for a line that is no export line
    message: str


def corrections(
    lines: Iterable[bytes], decoder: EventDecoder, now: float
) -> tuple[list[Correction], list[Problem]]:
    """Each export line's corrected message, decoded as the dataflow would decode it now."""
    found: list[Correction] = []
    problems: list[Problem] = []
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            line = msgspec.json.decode(text, type=Exported)
            message = message_of(line)
        except (msgspec.DecodeError, ValueError) as exc:
            problems.append(Problem(number, "bad_line", f"not an export line: {exc}"))
            continue
        try:
            event = decoder.decode(message, now=now)
        except Invalid as exc:
            problems.append(Problem(number, exc.reason, exc.message))
            continue
        found.append(Correction(number, line.position, message, event.student_id, event.event_id))
    return found, problems


def _redrive(args: argparse.Namespace) -> int:
    from writech.rows import TableRows
    from writech.stores.base import open_clickhouse

    settings = _settings(args)
    topic = args.topic or next(iter(settings.kafka_topics), "")
    refuse_unless_topic_name("--topic" if args.topic else f"{PREFIX}KAFKA_TOPICS", topic)
    decoder = EventDecoder(settings.tz, settings.future_skew, settings.max_message_bytes)
    with _binary_input(args.file) as lines:
        found, problems = corrections(lines, decoder, time.time())
    if problems:
        for problem in problems:
            print(f"{args.file}:{problem.line}: {problem.reason}: {problem.message}")
        print(f"{len(problems):,} lines cannot be re-driven; nothing was sent", file=sys.stderr)
        return 1
    store = open_clickhouse(settings, existing=True)
    try:
        before = _redriven(store, [correction.letter for correction in found])
        skipped = [c for c in found if c.letter in before and not args.again]
        sending = [c for c in found if c not in skipped]
        for correction in skipped:
            print(f"skipped {correction.letter}: re-driven before (--again to send it anyway)")
        if args.dry_run:
            print(f"would send {len(sending):,} messages to {topic} (dry run)")
            return 0
        outcomes = produce(settings, topic, sending)
        redriven_at = round(time.time() * 1_000_000)
        rows: list[RedriveRow] = [
            (letter.origin, letter.partition, letter.offset, redriven_at, topic, *outcome,
             correction.event_id)
            for correction, outcome in zip(sending, outcomes, strict=True)
            if isinstance(outcome, tuple)
            for letter in (correction.letter,)
        ]  # fmt: skip
        # Recorded even if others failed: a second run skips what was delivered.
        if rows:
            store.insert(TableRows.from_rows(DEAD_LETTER_REDRIVE, rows))
    finally:
        store.close()
    failed = [
        (correction, outcome)
        for correction, outcome in zip(sending, outcomes, strict=True)
        if isinstance(outcome, str)
    ]
    for correction, error in failed:
        print(f"{args.file}:{correction.line}: not delivered: {error}")
    print(f"sent {len(rows):,} messages to {topic}; {len(skipped):,} skipped")
    if failed:
        print(
            f"{len(failed):,} messages were not delivered to Kafka topic {topic!r}; those "
            "sent are recorded, and a second run sends only the others",
            file=sys.stderr,
        )
        return 1
    return 0


# Letters looked up per query: each is three parameters in the query's text, and
# ClickHouse refuses a query beyond 256 KiB (3,500 letters of an export did).
_LETTERS_PER_QUERY: Final = 500


def _redriven(store: ClickHouse, letters: Sequence[Position]) -> set[Position]:
    """Which of `letters` were re-driven before."""
    found: set[Position] = set()
    for first in range(0, len(letters), _LETTERS_PER_QUERY):
        chunk = tuple(letters[first : first + _LETTERS_PER_QUERY])
        where, params = Selection(letters=chunk).where()
        rows = store.query(
            f"SELECT DISTINCT origin, partition, offset FROM {_REDRIVES} WHERE {where}", params
        )
        found |= {Position(row["origin"], row["partition"], row["offset"]) for row in rows}
    return found


def produce(
    settings: Settings, topic: str, sending: Sequence[Correction]
) -> list[tuple[int, int] | str]:
    """Produce each corrected message (keyed by its student) and wait for the broker's
    acknowledgement of all; for each, in order, its (partition, offset) or why it was
    not delivered."""
    from confluent_kafka import KafkaError, KafkaException, Message, Producer

    from writech.logs import LIBRDKAFKA
    from writech.sources.kafka import config_error
    from writech.stores.kafka import record_limit

    try:
        producer = Producer(
            {
                "bootstrap.servers": ",".join(settings.kafka_brokers),
                "acks": "all",
                "enable.idempotence": True,
                "message.timeout.ms": round(settings.store_deadline * 1000),
                # every message the dataflow admits (librdkafka's default admits less)
                "message.max.bytes": record_limit(settings),
                **settings.kafka_options,
                "logger": LIBRDKAFKA,  # its lines handed over by `flush`
            }
        )
    except KafkaException as exc:
        raise config_error(exc) from None
    undelivered = "no acknowledgement before the store deadline"
    outcomes: list[tuple[int, int] | str] = [undelivered] * len(sending)

    def delivered(number: int) -> Callable[[KafkaError | None, Message], None]:
        def report(error: KafkaError | None, record: Message) -> None:
            if error is not None:
                outcomes[number] = error.str()
            else:
                outcomes[number] = (record.partition() or 0, record.offset() or 0)

        return report

    for number, correction in enumerate(sending):
        while True:
            try:
                producer.produce(
                    topic,
                    value=correction.message,
                    key=correction.student_id.encode(),
                    on_delivery=delivered(number),
                )
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.1)
            except KafkaException as exc:  # refused before sending (too large for the options)
                error = exc.args[0]
                outcomes[number] = error.str() if isinstance(error, KafkaError) else str(exc)
                break
    producer.flush(settings.store_deadline)
    return outcomes


# -- validate ------------------------------------------------------------------


class Example(msgspec.Struct, frozen=True):
    """Where a message is, and what is wrong with it."""

    file: str
    line: int
    message: str


class Validation(msgspec.Struct):
    """What the dataflow would make of some files' messages (`too_late` aside: it
    depends on what the dataflow has seen before)."""

    files: list[str]
    messages: int = 0
    valid: int = 0  # distinct valid events
    duplicates: int = 0  # valid, but the identity (student, event id) of an earlier one
    dead_lettered: dict[str, int] = msgspec.field(default_factory=dict)  # per reason
    examples: dict[str, list[Example]] = msgspec.field(default_factory=dict)
    duplicate_examples: list[Example] = msgspec.field(default_factory=list)

    @property
    def all_valid(self) -> bool:
        return not self.dead_lettered


def validate(
    files: Sequence[str], batches: Iterable[RawBatch], decoder: EventDecoder, examples: int
) -> Validation:
    """Decode every message of `batches` as the dataflow would; count them by outcome."""
    found = Validation(list(files))
    reasons: Counter[str] = Counter()
    first: dict[int, tuple[str, int]] = {}  # identity -> where it was first seen
    for batch in batches:
        events, dead = decoder.decode_batch(batch)
        found.messages += len(batch.messages) + len(batch.rejected)
        for event in events:
            seen = first.get(event.dedup_key)
            if seen is None:
                first[event.dedup_key] = (event.origin, event.offset)
                found.valid += 1
                continue
            found.duplicates += 1
            if len(found.duplicate_examples) < examples:
                found.duplicate_examples.append(
                    Example(event.origin, event.offset, f"the same event as {seen[0]}:{seen[1]}")
                )
        for letter in dead:
            origin, _, line, reason, message = letter[:5]
            reasons[reason] += 1
            shown = found.examples.setdefault(reason, [])
            if len(shown) < examples:
                shown.append(Example(origin, line, message))
    found.dead_lettered = dict(reasons.most_common())
    return found


def _validate(args: argparse.Namespace) -> int:
    from writech.sources.files import read_one_at_a_time

    settings = Settings.from_env()
    decoder = EventDecoder(settings.tz, settings.future_skew, settings.max_message_bytes)
    files, batches = read_one_at_a_time(args.paths, settings.batch_size, settings.max_message_bytes)
    report = validate(files, batches, decoder, args.examples)
    if args.format == "json":
        sys.stdout.buffer.write(msgspec.json.encode(report) + b"\n")
    else:
        print(_validation_text(report))
    return 0 if report.all_valid else 1


def _validation_text(report: Validation) -> str:
    dead = sum(report.dead_lettered.values())
    lines = [
        f"{len(report.files)} files, {report.messages:,} messages: {report.valid:,} valid, "
        f"{report.duplicates:,} duplicates, {dead:,} would be dead-lettered"
    ]
    for reason, count in report.dead_lettered.items():
        lines.append(f"  {reason:<20}{count:>10,}")
        lines += [
            f"      {example.file}:{example.line}  {_shortened(example.message, 120)}"
            for example in report.examples.get(reason, [])
        ]
    if report.duplicates:
        lines.append(f"  {'duplicates':<20}{report.duplicates:>10,}  (counted once, not an error)")
        lines += [
            f"      {example.file}:{example.line}  {example.message}"
            for example in report.duplicate_examples
        ]
    return "\n".join(lines)


# -- forget --------------------------------------------------------------------


def _forget(args: argparse.Namespace) -> int:
    from writech.privacy import LETTER_NAMES_STUDENT, student_hash
    from writech.rows import TableRows
    from writech.stores.base import delete_counted, open_clickhouse, open_error_store

    settings = _settings(args)
    clickhouse = open_clickhouse(settings, existing=True)
    errors = open_error_store(settings, existing=True)
    try:
        for student in dict.fromkeys(args.students):
            requested_at = round(time.time() * 1_000_000)
            params = {"student": student}
            removed = {
                table: delete_counted(clickhouse, table, "student_id = {student:String}", params)
                for table in STUDENT_TABLES
            }
            removed[DEAD_LETTER.name] = delete_counted(
                clickhouse, DEAD_LETTER.name, LETTER_NAMES_STUDENT, params
            )
            removed[ERROR_RECORD.name] = errors.delete_students([student])
            request = uuid.uuid4().hex
            hashed = student_hash(student)
            rows: list[ForgetRequestRow] = [
                (request, hashed, requested_at, table, count) for table, count in removed.items()
            ]
            clickhouse.insert(TableRows.from_rows(FORGET_REQUESTS, rows))
            log.info(
                "forget request %s: deleted student %s's data, %d rows (%s)",
                request,
                hashed,
                sum(removed.values()),
                ", ".join(f"{table} {count}" for table, count in removed.items()),
                extra={"request_id": request, "student_hash": hashed, "rows_removed": removed},
            )
            print(f"{student}: request {request}, requested at {_utc(requested_at)}")
            for table, count in removed.items():
                print(f"  {table:<22}{count:>10,} rows removed")
    finally:
        errors.close()
        clickhouse.close()
    print(
        "The dataflow forgets them from its state when it next starts (start it now if it "
        "is stopped); their messages produced before now are not counted again."
    )
    return 0
