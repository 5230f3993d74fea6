from digest.text import clean, fold, nfc, slugify


def test_slug_of_vietnamese_names_is_ascii() -> None:
    assert slugify("Đào Hồng Lan") == "dao-hong-lan"
    assert slugify("Nguyễn Thị Liên Hương") == "nguyen-thi-lien-huong"
    assert slugify("Đỗ Xuân Tuyên") == "do-xuan-tuyen"
    assert slugify("../../etc/passwd <script>") == "etc-passwd-script"


def test_fold_treats_both_tone_conventions_as_equal() -> None:
    assert fold("khoẻ") == fold("khỏe")
    assert fold("Hoà") == fold("hòa")
    assert fold("Thuỳ") == fold("Thùy")
    assert fold("thoả thuận") == fold("thỏa thuận")
    assert fold("Ủy ban") == fold("Uỷ ban")


def test_fold_keeps_distinct_words_distinct() -> None:
    assert fold("Hà") != fold("Hạ")
    assert fold("dịch") != fold("dịch vụ")


def test_fold_reads_nfd_dashes_quotes_and_space() -> None:
    decomposed = "Bo\u0323\u0302 Y te\u0302\u0301"  # NFD spelling of "Bộ Y tế"
    assert fold(decomposed) == fold("Bộ Y tế")
    assert fold("Việt Nam – Pháp") == fold("Việt Nam - Pháp")
    assert fold("“Mắt khoẻ”") == fold('"Mắt khỏe"')
    assert fold("  a \t b ") == "a b"


def test_clean_removes_control_characters() -> None:
    assert clean("a\x00b\x1bc\x7f") == "a b c"
    assert nfc("e\u0301") == "é"
