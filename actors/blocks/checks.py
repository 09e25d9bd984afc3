"""Small config checks shared by the block types. Each returns (key, message) pairs."""

COMMON_KEYS = ("timeout", "retries", "retry_delay", "continue_on_error", "on_resume")


def is_template(value):
    return isinstance(value, str) and "{{" in value


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_int64(value):
    return isinstance(value, int) and not isinstance(value, bool) and -2 ** 63 <= value < 2 ** 63


def common(config):
    """Checks for the keys every block type accepts."""
    problems = []
    timeout = config.get("timeout")
    if timeout is not None and not is_template(timeout) and not (is_number(timeout) and timeout > 0):
        problems.append(("timeout", "timeout must be a positive number of seconds"))
    retries = config.get("retries")
    if retries is not None and not is_template(retries) and not (
            isinstance(retries, int) and not isinstance(retries, bool) and 0 <= retries <= 100):
        problems.append(("retries", "retries must be an integer from 0 to 100"))
    delay = config.get("retry_delay")
    if delay is not None and not is_template(delay) and not (is_number(delay) and delay >= 0):
        problems.append(("retry_delay", "retry_delay must be a number of seconds >= 0"))
    coe = config.get("continue_on_error")
    if coe is not None and not isinstance(coe, bool):
        problems.append(("continue_on_error", "continue_on_error must be true or false"))
    on_resume = config.get("on_resume")
    if on_resume is not None and on_resume not in ("run", "fail"):
        problems.append(("on_resume", 'on_resume must be "run" (the default) or "fail"'))
    return problems


def string(config, key, required=False):
    value = config.get(key)
    if value is None:
        return [(key, f"{key} is required")] if required else []
    if not isinstance(value, str) or (required and not value.strip()):
        return [(key, f"{key} must be a non-empty string" if required else f"{key} must be a string")]
    return []


def number(config, key, minimum=None, integer=False):
    value = config.get(key)
    if value is None or is_template(value):
        return []
    ok = is_int64(value) if integer else is_number(value)
    if not ok or (minimum is not None and value < minimum):
        kind = "an integer (64 bits)" if integer else "a number"
        bound = f" >= {minimum}" if minimum is not None else ""
        return [(key, f"{key} must be {kind}{bound}")]
    return []


def mapping(config, key):
    value = config.get(key)
    if value is None or is_template(value) or isinstance(value, dict):
        return []
    return [(key, f"{key} must be an object")]
