"""schedule: where a scheduled run begins, and the pure cron arithmetic behind it.

Config: `cron` (five fields, as crontab), `timezone` (IANA name, default
UTC), `variables` (the run's variables, default {}), `catch_up` ("none" or
"latest"). The block's output is `{"tick", "timezone"}`: the time the run
was due, in UTC ISO 8601.

Cron times follow the timezone's wall clock, daylight-saving changes
included, the way cron itself does (cronsim implements Debian cron's rules).
"""

import datetime
import zoneinfo

from cronsim import CronSim, CronSimError

from . import BlockType, checks

CATCH_UP = ("none", "latest")
UTC = datetime.timezone.utc


def run(ctx):
    return ctx.trigger


def _zone(name):
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        return None


def check(config):
    problems = checks.common(config) + checks.string(config, "cron", required=True)
    problems += checks.string(config, "timezone") + checks.mapping(config, "variables")
    if checks.is_template(config.get("variables")):
        problems.append(("variables", "variables must be an object, not a template"))
    cron, tz = config.get("cron"), config.get("timezone", "UTC")
    if isinstance(tz, str) and _zone(tz) is None:
        problems.append(("timezone", f"unknown timezone '{tz}' (an IANA name such as Europe/Berlin)"))
    if isinstance(cron, str) and cron.strip():
        if len(cron.split()) != 5:
            problems.append(("cron", "cron must have five fields: minute hour day month weekday"))
        else:
            try:
                CronSim(cron, datetime.datetime(2000, 1, 1, tzinfo=UTC))
            except CronSimError as exc:
                problems.append(("cron", f"invalid cron expression: {exc}"))
    if config.get("catch_up", "none") not in CATCH_UP:
        problems.append(("catch_up", 'catch_up must be "none" or "latest"'))
    return problems


def _aware(naive_utc):
    return naive_utc.replace(tzinfo=UTC)


def _naive(aware):
    return aware.astimezone(UTC).replace(tzinfo=None)


def next_fires(config, after, count=3):
    """The next `count` due times strictly after `after` (naive UTC in, naive UTC out)."""
    zone = _zone(config.get("timezone", "UTC"))
    it = CronSim(config["cron"], _aware(after).astimezone(zone))
    return [_naive(next(it)) for _ in range(count)]


def latest_due(config, now):
    """The latest due time at or before `now` (naive UTC), or None."""
    zone = _zone(config.get("timezone", "UTC"))
    # Reverse iteration starts strictly before its origin: start just after now.
    origin = _aware(now + datetime.timedelta(microseconds=1)).astimezone(zone)
    try:
        return _naive(next(CronSim(config["cron"], origin, reverse=True)))
    except StopIteration:
        return None


def due(config, since, now, late_after):
    """What the scheduler owes a schedule block at `now`: None, or (tick, fire).

    `since` is the later of when the workflow was deployed and the last tick
    claimed. The tick is the latest due time after `since`. It fires when it
    is on time (at most `late_after` seconds ago); an older tick was missed
    (the server was down): it fires only with `catch_up: "latest"`, else it is
    claimed without a run, so it is not considered again.
    """
    tick = latest_due(config, now)
    if tick is None or tick <= since:
        return None
    on_time = (now - tick).total_seconds() <= late_after
    return tick, on_time or config.get("catch_up", "none") == "latest"


TYPE = BlockType("schedule", check, run, trigger=True, uses_inputs=False, inline=True)
