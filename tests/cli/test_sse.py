"""The CLI's Server-Sent Events parser reads what the service writes (jobs/live/wire.py), and the standard's edge
cases: comments, multi-line data, an id that carries over, an event cut off by a dropped line."""

from __future__ import annotations

from screenreel_cli.sse import SseEvent, SseParser, parse


def test_it_reads_the_services_preamble_heartbeats_and_events() -> None:
    lines = ["retry: 2000\n", ": stream of job_1\n", "\n",
             "id: evt_1\n", "event: job.created\n", 'data: {"type":"job.created"}\n', "\n",
             ": heartbeat\n", "\n",
             "id: evt_2\r\n", "event: job.progress\r\n", 'data: {"progress":0.5}\r\n', "\r\n"]
    parser = SseParser()
    assert list(parse(lines, parser)) == [SseEvent("evt_1", "job.created", '{"type":"job.created"}'),
                                          SseEvent("evt_2", "job.progress", '{"progress":0.5}')]
    assert (parser.retry_ms, parser.last_id) == (2000, "evt_2")


def test_data_lines_join_with_newlines_and_one_leading_space_is_dropped() -> None:
    events = list(parse(["data:first\n", "data:  second\n", "\n"]))
    assert events == [SseEvent(None, "message", "first\n second")]


def test_an_id_carries_over_to_the_next_event_and_an_empty_event_is_not_dispatched() -> None:
    events = list(parse(["id: 7\n", "\n", "event: x\n", "data: a\n", "\n", "id\n", "data: b\n", "\n"]))
    assert events == [SseEvent("7", "x", "a"), SseEvent("", "message", "b")]


def test_an_event_cut_off_before_its_blank_line_is_not_an_event() -> None:
    assert list(parse(["id: 1\n", "event: job.succeeded\n", 'data: {"a": 1}\n'])) == []


def test_unknown_fields_and_bad_retry_values_are_ignored() -> None:
    parser = SseParser()
    assert list(parse(["retry: soon\n", "foo: bar\n", "data: x\n", "\n"], parser)) == [SseEvent(None, "message", "x")]
    assert parser.retry_ms is None
