"""Names and places of Phú Lương district (Thái Nguyên) for the demo month, all in Unicode NFC.

Everything here is illustrative data: the people and the companies are invented, the places are
the communes and towns of Phú Lương, and the budget codes follow the shape of the State Budget
Index (Circular 324/2016/TT-BTC) without claiming to be an official extract.
"""

from __future__ import annotations

import random
import unicodedata
from typing import Final


def nfc(text: str) -> str:
    """Text in Unicode NFC, whatever form the source file used."""
    return unicodedata.normalize("NFC", text)


def _nfc_all(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(nfc(item) for item in items)


# Kinh family names with rough national frequencies (percent).
KINH_FAMILY_NAMES: Final[tuple[tuple[str, int], ...]] = tuple(
    (nfc(name), weight)
    for name, weight in (
        ("Nguyễn", 31),
        ("Trần", 11),
        ("Lê", 9),
        ("Phạm", 7),
        ("Hoàng", 5),
        ("Huỳnh", 1),
        ("Phan", 4),
        ("Vũ", 4),
        ("Võ", 1),
        ("Đặng", 3),
        ("Bùi", 3),
        ("Đỗ", 3),
        ("Hồ", 2),
        ("Ngô", 2),
        ("Dương", 2),
        ("Lý", 1),
        ("Đinh", 2),
        ("Đào", 2),
        ("Trịnh", 1),
        ("Lưu", 1),
    )
)

# Family names of the Tày, Nùng, Dao and San Chay communities of Thái Nguyên.
MINORITY_FAMILY_NAMES: Final[tuple[tuple[str, int], ...]] = tuple(
    (nfc(name), weight)
    for name, weight in (
        ("Ma", 8),
        ("Hà", 8),
        ("La", 6),
        ("Lương", 6),
        ("Hoàng", 8),
        ("Triệu", 6),
        ("Nông", 6),
        ("Lục", 3),
        ("Đàm", 3),
        ("Mạc", 2),
        ("Bàn", 3),
        ("Lâm", 2),
        ("Âu", 1),
    )
)

# Share of beneficiaries from ethnic-minority communities (about a third in Phú Lương).
MINORITY_SHARE: Final = 0.33

MALE_MIDDLE_NAMES: Final = _nfc_all(
    ("Văn", "Văn", "Văn", "Đức", "Minh", "Hữu", "Quang", "Xuân", "Đình", "Công", "Thanh", "Ngọc")
)
FEMALE_MIDDLE_NAMES: Final = _nfc_all(
    ("Thị", "Thị", "Thị", "Thị", "Ngọc", "Thanh", "Thu", "Minh", "Hồng", "Kim")
)

MALE_GIVEN_NAMES: Final = _nfc_all(
    (
        "Hùng",
        "Dũng",
        "Tuấn",
        "Nam",
        "Sơn",
        "Hải",
        "Long",
        "Thắng",
        "Bình",
        "Cường",
        "Quân",
        "Tùng",
        "Toàn",
        "Phúc",
        "Khánh",
        "Hòa",
        "Thành",
        "Trung",
        "Kiên",
        "Chiến",
        "Hiếu",
        "Tiến",
        "Đông",
        "Vinh",
        "Quý",
        "Lợi",
        "Sinh",
        "Thọ",
        "Lộc",
        "Khải",
        "Định",
        "Pảo",
        "Sáng",
        "Tư",
    )
)
FEMALE_GIVEN_NAMES: Final = _nfc_all(
    (
        "Lan",
        "Hương",
        "Hoa",
        "Mai",
        "Hằng",
        "Nga",
        "Thảo",
        "Hạnh",
        "Huyền",
        "Linh",
        "Phương",
        "Thủy",
        "Yến",
        "Nhung",
        "Loan",
        "Tuyết",
        "Hiền",
        "Liên",
        "Dung",
        "Xuân",
        "Vân",
        "Thơm",
        "Nụ",
        "Mến",
        "Lụa",
        "Thắm",
        "Chiên",
        "Nguyệt",
        "Đào",
        "Sen",
    )
)

# The two towns and the communes of Phú Lương, with their administrative prefix.
COMMUNES: Final = _nfc_all(
    (
        "thị trấn Đu",
        "thị trấn Giang Tiên",
        "xã Yên Ninh",
        "xã Yên Trạch",
        "xã Yên Đổ",
        "xã Yên Lạc",
        "xã Ôn Lương",
        "xã Động Đạt",
        "xã Phủ Lý",
        "xã Hợp Thành",
        "xã Phấn Mễ",
        "xã Tức Tranh",
        "xã Vô Tranh",
        "xã Cổ Lũng",
        "xã Sơn Cẩm",
    )
)


def place_name(commune: str) -> str:
    """The commune's proper name without its prefix: `xã Yên Ninh` → `Yên Ninh`."""
    for prefix in ("thị trấn ", "xã "):
        if commune.startswith(prefix):
            return commune[len(prefix) :]
    return commune


def commune_office(commune: str) -> str:
    """Name of the People's Committee of a commune or town: `UBND xã Yên Ninh`."""
    return nfc(f"UBND {commune}")


# Budget-using units that receive utility bills: (kind of unit, name template).
UNIT_KINDS: Final[tuple[tuple[str, str], ...]] = tuple(
    (kind, nfc(template))
    for kind, template in (
        ("commune", "UBND {commune}"),
        ("school", "Trường THCS {place}"),
        ("school", "Trường Tiểu học {place}"),
        ("school", "Trường Mầm non {place}"),
        ("health", "Trạm Y tế {commune}"),
    )
)

# Invented suppliers of the district's budget-using units:
# (name, what was bought, buying unit, budget chapter, economic code).
SUPPLIERS: Final[tuple[tuple[str, str, str, str, str], ...]] = tuple(
    (nfc(name), nfc(goods), nfc(buyer), chapter, code)
    for name, goods, buyer, chapter, code in (
        (
            "Công ty TNHH Thương mại và Dịch vụ Minh Phát Thái Nguyên",
            "văn phòng phẩm quý IV",
            "UBND thị trấn Đu",
            "805",
            "6551",
        ),
        (
            "Công ty Cổ phần Xây dựng Giao thông Phú Lương",
            "sửa chữa đường liên xã",
            "UBND xã Phấn Mễ",
            "805",
            "6907",
        ),
        (
            "Công ty TNHH Thiết bị Y tế An Khang",
            "vật tư y tế",
            "Trạm Y tế xã Động Đạt",
            "623",
            "7001",
        ),
        (
            "Công ty Cổ phần Sách và Thiết bị Trường học Đông Bắc",
            "thiết bị dạy học",
            "Trường THCS Yên Lạc",
            "622",
            "7006",
        ),
        (
            "Công ty TNHH Tin học Sông Cầu",
            "máy tính và máy in",
            "UBND xã Hợp Thành",
            "805",
            "6956",
        ),
        (
            "Công ty TNHH Môi trường Xanh Phú Lương",
            "thu gom rác thải tháng {period}",
            "UBND thị trấn Giang Tiên",
            "805",
            "6504",
        ),
    )
)

# Company payers of withheld personal income tax, with their (invented) tax codes.
TAXPAYER_COMPANIES: Final[tuple[tuple[str, str], ...]] = tuple(
    (nfc(name), tax_code)
    for name, tax_code in (
        ("Công ty TNHH Chè Hảo Đạt", "4600912377"),
        ("Công ty Cổ phần Gạch Tuynel Phú Lương", "4600387214"),
        ("Hợp tác xã Chè Phú Đô", "4601204859"),
        ("Công ty TNHH Vận tải Thành Công Thái Nguyên", "4600755130"),
    )
)


def full_name(rng: random.Random) -> str:
    """A Vietnamese full name with diacritics: family, middle and given name, in NFC."""
    pool = MINORITY_FAMILY_NAMES if rng.random() < MINORITY_SHARE else KINH_FAMILY_NAMES
    family = rng.choices([name for name, _ in pool], weights=[w for _, w in pool])[0]
    if rng.random() < 0.55:
        middle, given = rng.choice(FEMALE_MIDDLE_NAMES), rng.choice(FEMALE_GIVEN_NAMES)
    else:
        middle, given = rng.choice(MALE_MIDDLE_NAMES), rng.choice(MALE_GIVEN_NAMES)
    return nfc(f"{family} {middle} {given}")
