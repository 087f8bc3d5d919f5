"""Trace loading: both formats, scale, slices, seeds, and errors naming file, line and column."""

from __future__ import annotations

import numpy as np
import pytest

from costscaler.sim.traces import TraceError, load_spot_trace, load_trace


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_request_trace_bins_requests_and_tokens(tmp_path):
    path = write(
        tmp_path,
        "trace.csv",
        "timestamp_s,input_tokens,output_tokens\n0.2,5,10\n0.7,5,20\n2.5,1,7\n",
    )
    trace = load_trace(path)
    assert trace.arrivals.tolist() == [2, 0, 1]
    assert trace.output_tokens is not None and trace.output_tokens.tolist() == [30, 0, 7]


def test_empty_token_columns_mean_no_tokens(tmp_path):
    path = write(tmp_path, "t.csv", "timestamp_s,input_tokens,output_tokens\n0.5,,\n1.5,,\n")
    assert load_trace(path).output_tokens is None


def test_scale_slice_and_seed(tmp_path):
    rows = "".join(f"{t / 10},1,1\n" for t in range(1000))
    path = write(tmp_path, "t.csv", "timestamp_s,input_tokens,output_tokens\n" + rows)
    assert load_trace(path, scale=3).arrivals.sum() == 3000
    half = load_trace(path, scale=2.5, seed=4)
    assert half.arrivals.sum() == pytest.approx(2500, rel=0.05)
    assert np.array_equal(half.arrivals, load_trace(path, scale=2.5, seed=4).arrivals)
    part = load_trace(path, start_s=10, duration_s=20)
    assert part.steps == 20 and part.arrivals.sum() == 200


def test_rate_series_is_seeded_poisson(tmp_path):
    text = "window_start_s,window_len_s,rate_rps,active_clients\n0,600,5.0,3\n600,600,50.0,9\n"
    path = write(tmp_path, "rates.csv", text)
    a, b = load_trace(path, seed=1), load_trace(path, seed=1)
    assert np.array_equal(a.arrivals, b.arrivals) and a.steps == 1200
    assert a.arrivals[:600].mean() == pytest.approx(5, rel=0.1)
    assert load_trace(path, seed=1, scale=2).arrivals[600:].mean() == pytest.approx(100, rel=0.05)
    assert not np.array_equal(a.arrivals, load_trace(path, seed=2).arrivals)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        pytest.param("timestamp_s,input_tokens,output_tokens\n1,2,x\n", ":2:3:", id="bad-cell"),
        pytest.param("timestamp_s,input_tokens,output_tokens\n1,2\n", ":2:", id="short-row"),
        pytest.param("timestamp_s,input_tokens,output_tokens\n5,1,1\n2,1,1\n", ":3:1:", id="order"),
        pytest.param("time,rate\n1,2\n", ":1:", id="header"),
        pytest.param(
            "window_start_s,window_len_s,rate_rps,active_clients\n0,600,-1,2\n", ":2:3:", id="neg"
        ),
    ],
)
def test_errors_name_file_line_and_column(tmp_path, text, where):
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(TraceError) as err:
        load_trace(path)
    assert f"{path}{where}" in str(err.value)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(TraceError, match="cannot read"):
        load_trace(tmp_path / "nope.csv")


def test_spot_trace(tmp_path):
    path = write(tmp_path, "zone.csv", "time_s,available,target\n0,4,4\n300,2,4\n600,0,4\n")
    spot = load_spot_trace(path)
    assert spot.available.tolist() == [4, 2, 0]
    bad = write(tmp_path, "bad.csv", "time_s,available,target\n0,4,4\n0,2,4\n")
    with pytest.raises(TraceError, match=r"bad.csv:3:1"):
        load_spot_trace(bad)


def test_each_request_keeps_its_tokens_through_scale_and_burn_in(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("timestamp_s,input_tokens,output_tokens\n0.5,10,1\n1.5,20,2\n2.5,30,3\n")
    tr = load_trace(path, scale=2.0)
    assert tr.requests is not None
    assert tr.requests.input_tokens.tolist() == [10, 10, 20, 20, 30, 30]
    assert tr.requests.output_tokens.tolist() == [1, 1, 2, 2, 3, 3]
    late = tr.after(2)
    assert late.requests is not None
    assert late.requests.time_s.tolist() == [0.5, 0.5] and late.arrivals.tolist() == [2.0]
    blank = tmp_path / "blank.csv"
    blank.write_text("timestamp_s,input_tokens,output_tokens\n0.5,,1\n")
    assert load_trace(blank).requests is None  # no input tokens: drawn when served
