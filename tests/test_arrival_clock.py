from instrument.midi_in import ArrivalClock


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_late_readings_are_corrected_by_the_drivers_deltas():
    clock = Clock()
    arrival = ArrivalClock(clock)
    true_times = [10.0, 10.1, 10.25, 10.3]
    lags = [0.0, 0.003, 0.0005, 0.002]       # how late Python saw each message
    stamps = []
    for i, (t, lag) in enumerate(zip(true_times, lags)):
        clock.now = t + lag
        delta = 0.0 if i == 0 else t - true_times[i - 1]
        stamps.append(arrival.stamp(delta))
    assert [round(s, 9) for s in stamps] == true_times


def test_drift_between_the_clocks_cannot_accumulate():
    clock = Clock()
    arrival = ArrivalClock(clock)
    for i in range(1000):
        clock.now = 10.0 + i * 0.1
        stamp = arrival.stamp(0.0 if i == 0 else 0.0999)  # the driver's clock runs 0.1 % slow
        assert clock.now - ArrivalClock.MAX_LAG - 1e-9 <= stamp <= clock.now


def test_stamps_before_the_audio_clock_runs_do_not_anchor_later_ones():
    clock = Clock()
    arrival = ArrivalClock(clock)
    assert arrival.stamp(0.0) == 0.0
    clock.now = 50.0
    assert arrival.stamp(30.0) == 50.0

