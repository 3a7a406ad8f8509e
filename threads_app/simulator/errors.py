"""The API's error answers: one exception that carries its status and the `{"error": {…}}` body.

Messages copy the wording the real API uses (as seen in its answers), so that code written against the
simulator shows people the same text it would show with OpenAI.
"""


class ErrorResponse(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # noqa: A002 - the API's own field name
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def not_found(message: str) -> ErrorResponse:
    return ErrorResponse(404, message)


def invalid_url(method: str, path: str) -> ErrorResponse:
    return ErrorResponse(404, f"Invalid URL ({method} {path})")


def missing_parameter(param: str) -> ErrorResponse:
    return ErrorResponse(
        400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def unknown_parameter(param: str) -> ErrorResponse:
    return ErrorResponse(400, f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter")


def invalid_value(param: str, value, supported: tuple[str, ...]) -> ErrorResponse:
    choices = " and ".join(", ".join(f"'{s}'" for s in supported).rsplit(", ", 1))
    return ErrorResponse(
        400,
        f"Invalid value: '{value}'. Supported values are: {choices}.",
        param=param,
        code="invalid_value",
    )


def invalid_type(param: str, expected: str, value) -> ErrorResponse:
    got = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
    return ErrorResponse(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {got} instead.",
        param=param,
        code="invalid_type",
    )


def out_of_range(param: str, value: int, minimum: int, maximum: int) -> ErrorResponse:
    if value < minimum:
        message = f"integer below minimum value. Expected a value >= {minimum}, but got {value} instead."
        code = "integer_below_min_value"
    else:
        message = f"integer above maximum value. Expected a value <= {maximum}, but got {value} instead."
        code = "integer_above_max_value"
    return ErrorResponse(400, f"Invalid '{param}': {message}", param=param, code=code)


def too_long(param: str, what: str, length: int, maximum: int) -> ErrorResponse:
    """`what` is "string" or "array", as the API words it."""
    article = "an" if what[0] in "aeiou" else "a"
    return ErrorResponse(
        400,
        f"Invalid '{param}': {what} too long. Expected {article} {what} with maximum length {maximum}, "
        f"but got {article} {what} with length {length} instead.",
        param=param,
        code=f"{what}_above_max_length",
    )


def too_many_properties(param: str, count: int, maximum: int) -> ErrorResponse:
    return ErrorResponse(
        400,
        f"Invalid '{param}': too many properties. Expected an object with at most {maximum} properties, "
        f"but got an object with {count} properties instead.",
        param=param,
        code="object_above_max_properties",
    )


BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
    "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. "
    "If you have trouble figuring out how to fix this, please contact us through our help center at "
    "help.openai.com.)"
)
