from pai_kb.loaders.frontmatter import split_frontmatter, string_list, tag_list


def fm(text: str):
    return split_frontmatter(text.split("\n"))


def test_parses_keys_dates_and_counts_lines():
    result = fm("---\ntitle: T\ncreated: 2024-01-02\nrating: 4\n---\nbody")
    assert result.data == {"title": "T", "created": "2024-01-02", "rating": 4}
    assert result.line_count == 5 and result.warning is None


def test_aliases_as_string_list_or_empty():
    assert string_list("Solo") == ("Solo",)
    assert string_list(["a", "", None, "b", "a"]) == ("a", "b")
    assert string_list(None) == ()
    assert string_list("one, two") == ("one", "two")


def test_tags_forms():
    assert tag_list(["#a", "b", None, ""]) == ("a", "b")
    assert tag_list("book programming") == ("book", "programming")
    assert tag_list("book, programming") == ("book", "programming")


def test_malformed_yaml_warns_and_keeps_line_count():
    result = fm("---\ntags: [unclosed\n---\nbody")
    assert result.data == {} and result.line_count == 3 and "not valid YAML" in result.warning


def test_unterminated_frontmatter_is_body():
    result = fm("---\ntitle: x\nno end here")
    assert result.line_count == 0 and "no closing" in result.warning


def test_billion_laughs_refused():
    bomb = "---\na: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n" + "\n".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]" for i in range(8)
    ) + "\n---\n"
    result = fm(bomb)
    assert result.data == {} and "aliases" in result.warning


def test_non_mapping_ignored():
    assert "mapping" in fm("---\n- a\n- b\n---\n").warning


def test_no_frontmatter():
    assert fm("# Title\n---\n").line_count == 0
