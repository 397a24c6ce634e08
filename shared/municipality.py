"""全国地方公共団体コード: the 6-digit local government code with its check digit."""

WEIGHTS = (6, 5, 4, 3, 2)


def check_digit(first_five: str) -> int:
    """The check digit of a 5-digit code (modulus 11, weights 6–2; remainders 0 and 1 give 1 and 0)."""
    remainder = sum(int(d) * w for d, w in zip(first_five, WEIGHTS, strict=True)) % 11
    return (11 - remainder) % 10


def is_valid_code(code: str) -> bool:
    """True for six digits whose last is the check digit of the first five."""
    return len(code) == 6 and code.isdigit() and int(code[5]) == check_digit(code[:5])
