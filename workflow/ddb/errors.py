"""The one exception type a user sees: it always names the file, the field and the fix."""


class DDBError(Exception):
    """A problem with the user's input (config, data, model path), not a bug.

    The message is meant to be read by the user as is: ``where`` names the file or config key,
    ``problem`` says what is wrong and ``fix`` what to do about it.
    """

    def __init__(self, where: str, problem: str, fix: str | None = None):
        self.where, self.problem, self.fix = str(where), problem, fix
        message = f"{where}: {problem}"
        if fix:
            message += f"\n  fix: {fix}"
        super().__init__(message)
