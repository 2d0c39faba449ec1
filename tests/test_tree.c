/* tree.c (YAML → tree with positions, overrides, the emitter) and error.c
 * (error objects, status codes, "did you mean"). */
#include "testutil.h"

static yf__tree *parse(const char *text)
{
    yf_error err = {0};
    yf__tree *t = yf__tree_parse(text, strlen(text), "t.yaml", &err);
    ck_assert_msg(t != NULL, "%s", yf_error_format(&err));
    return t;
}

/* Parses text and asserts failure with exactly `want` from yf_error_format. */
static void parse_fails(const char *text, const char *want)
{
    yf_error err = {0};
    yf__tree *t = yf__tree_parse(text, strlen(text), "t.yaml", &err);
    ck_assert_msg(t == NULL, "accepted:\n%s", text);
    ck_assert_int_eq(err.code, YF_ESPEC);
    ck_assert_str_eq(yf_error_format(&err), want);
}

static const yf__node *at_path(const yf__node *n, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL;
    for (char *seg = strtok_r(buf, ".", &save); seg && n; seg = strtok_r(NULL, ".", &save))
        n = n->kind == YF__SEQ ? (atoi(seg) < n->n ? n->kid[atoi(seg)] : NULL)
                               : yf__map_get(n, seg);
    ck_assert_msg(n != NULL, "no %s", path);
    return n;
}

START_TEST(test_positions)
{
    yf__tree *t = parse("# comment\n"
                        "a: 1\n"
                        "b:\n"
                        "  c: [x, 'y', \"z\"]\n"
                        "  d: {e: f}\n"
                        "  g:\n"
                        "    - h\n"
                        "    - {i: j}\n");
    const yf__node *r = t->root;
    ck_assert_int_eq(r->kind, YF__MAP);
    ck_assert_int_eq(r->n, 2);
    ck_assert_str_eq(r->key[1], "b");
    ck_assert_int_eq(r->kpos[2], 3); /* key b at 3:1 */
    ck_assert_int_eq(r->kpos[3], 1);
    const yf__node *a = at_path(r, "a");
    ck_assert(a->kind == YF__SCALAR && !strcmp(a->str, "1") && !a->quoted);
    ck_assert_int_eq(a->line, 2);
    ck_assert_int_eq(a->col, 4);
    const yf__node *c = at_path(r, "b.c");
    ck_assert_int_eq(c->kind, YF__SEQ);
    ck_assert_int_eq(c->n, 3);
    ck_assert_int_eq(c->line, 4);
    ck_assert_int_eq(c->col, 6);
    ck_assert(!c->kid[0]->quoted && c->kid[1]->quoted && c->kid[2]->quoted);
    ck_assert_str_eq(c->kid[1]->str, "y");
    ck_assert_int_eq(c->kid[2]->col, 15);
    const yf__node *j = at_path(r, "b.g.1.i");
    ck_assert_str_eq(j->str, "j");
    ck_assert_int_eq(j->line, 8);
    ck_assert_int_eq(j->col, 11);
    ck_assert_str_eq(j->file, "t.yaml");
    char path[128];
    yf__node_path(j, path, sizeof path);
    ck_assert_str_eq(path, "b.g[1].i");
    yf__node_path(c->kid[2], path, sizeof path);
    ck_assert_str_eq(path, "b.c[2]");
    yf__node_path(r, path, sizeof path);
    ck_assert_str_eq(path, "");
    /* a path cut to the buffer stays a string */
    yf__node_path(j, path, 5);
    ck_assert_int_lt(strlen(path), 5);
    yf__tree_free(t);
}
END_TEST

START_TEST(test_syntax_errors)
{
    parse_fails("a: [1, 2\nb: 3\n",
                "t.yaml:2:2: YAML syntax error: did not find expected ',' or ']' (in a flow "
                "sequence that starts at line 1, column 4)");
    parse_fails("a: 1\nb: 2\na: 3\n", "t.yaml:3:1: duplicate key 'a'");
    parse_fails("", "t.yaml:1:1: the spec is empty");
    parse_fails("# nothing\n", "t.yaml:1:1: the spec is empty");
    parse_fails("a: 1\n---\nb: 2\n",
                "t.yaml:3:1: a second YAML document: a spec file holds one ('---' starts "
                "another)");
    parse_fails("? [a, b]\n: 1\n", "t.yaml:1:3: mapping keys must be plain words");
    parse_fails("a:\n\tb: 1\n",
                "t.yaml:2:1: YAML syntax error: found character that cannot start any token "
                "(a tab: YAML indents with spaces only)");
    parse_fails("a: 'open\n", "t.yaml:2:1: YAML syntax error: found unexpected end of stream "
                              "(in a quoted scalar that starts at line 1, column 4)");
    /* 70 levels of nesting */
    char deep[256] = "";
    for (int i = 0; i < 70; i++)
        strcat(deep, "[");
    for (int i = 0; i < 70; i++)
        strcat(deep, "]");
    yf_error err = {0};
    ck_assert(yf__tree_parse(deep, strlen(deep), "t.yaml", &err) == NULL);
    ck_assert_int_eq(err.code, YF_ESPEC);
    ck_assert_str_eq(yf_error_format(&err), "t.yaml:1:65: nesting deeper than 64 levels");
    /* ten-fold aliases, six levels deep: 10^6 values from 7 lines */
    char bomb[1024] = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
    for (char p = 'a'; p < 'g'; p++) {
        char line[128];
        snprintf(line, sizeof line, "%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n",
                 p + 1, p + 1, p, p, p, p, p, p, p, p, p, p);
        strcat(bomb, line);
    }
    ck_assert(yf__tree_parse(bomb, strlen(bomb), "t.yaml", &err) == NULL);
    ck_assert_int_eq(err.code, YF_ESPEC);
    ck_assert_str_eq(yf_error_format(&err), "t.yaml:1:35: the spec expands to more than 100000 "
                                            "values (through YAML aliases?)");
}
END_TEST

/* Aliases copy what they name: the tree owns each node once. */
START_TEST(test_aliases)
{
    yf__tree *t = parse("base: &b {units: 3, activation: elu}\ncopy: *b\n");
    const yf__node *b = at_path(t->root, "base"), *c = at_path(t->root, "copy");
    ck_assert(b != c);
    ck_assert_int_eq(c->n, 2);
    ck_assert_str_eq(at_path(c, "activation")->str, "elu");
    yf__tree_free(t);
}
END_TEST

START_TEST(test_build_nodes)
{
    yf__node *m = yf__node_new(YF__MAP, "f", 1, 1);
    yf__map_set_scalar(m, "a", "1");
    yf__node *s = yf__map_set_node(m, "list", yf__node_new(YF__SEQ, "f", 2, 1));
    yf__node *k = yf__node_new(YF__SCALAR, "f", 3, 3);
    k->str = strdup("item");
    yf__seq_push(s, k);
    yf__map_set_scalar(m, "a", "2"); /* replaces */
    ck_assert_int_eq(m->n, 2);
    ck_assert_str_eq(yf__map_get(m, "a")->str, "2");
    ck_assert(yf__map_get(m, "nope") == NULL);
    ck_assert(yf__map_get(s, "a") == NULL); /* not a map */
    ck_assert(k->parent == s && s->parent == m);
    char path[64];
    yf__node_path(k, path, sizeof path);
    ck_assert_str_eq(path, "list[0]");
    yf__node_free(m);
}
END_TEST

/* Applies overrides in order; returns the tree (NULL and *rc on failure). */
static yf__tree *override(const char *text, const char *const *ov, int n, yf_error *err,
                          int *rc)
{
    yf__tree *t = parse(text);
    *rc = 0;
    for (int i = 0; i < n && !*rc; i++)
        *rc = yf__tree_override(t, ov[i], err);
    if (*rc) {
        yf__tree_free(t);
        return NULL;
    }
    return t;
}

static void assert_scalar(const yf__tree *t, const char *path, const char *want)
{
    const yf__node *n = at_path(t->root, path);
    ck_assert_msg(n->kind == YF__SCALAR && !strcmp(n->str, want), "%s is not '%s'", path, want);
}

START_TEST(test_overrides)
{
    const char *text = "train: {epochs: 1}\n"
                       "model:\n"
                       "  layers:\n"
                       "    - {name: a, units: 1}\n"
                       "    - {name: coding, units: 2}\n";
    const char *ov[] = {"train.epochs=3", "model.layers.coding.units=20", "model.layers.0.units=7",
                        "train.optimizer.type=sgd", "seed=5", "model.layers.1.tags=[p, q]",
                        "name=\"quoted\""};
    yf_error err = {0};
    int rc;
    yf__tree *t = override(text, ov, 7, &err, &rc);
    ck_assert_msg(rc == 0, "%s", yf_error_format(&err));
    assert_scalar(t, "train.epochs", "3");
    assert_scalar(t, "train.optimizer.type", "sgd");
    assert_scalar(t, "model.layers.0.units", "7");
    assert_scalar(t, "model.layers.1.units", "20");
    assert_scalar(t, "model.layers.1.tags.1", "q");
    assert_scalar(t, "seed", "5");
    assert_scalar(t, "name", "quoted");
    ck_assert(at_path(t->root, "name")->quoted);
    ck_assert(!at_path(t->root, "seed")->quoted);
    ck_assert_int_eq(t->root->n, 4); /* train, model, seed, name: in that order */
    ck_assert_str_eq(t->root->key[3], "name");
    /* the new values say where they came from, for error messages */
    const yf__node *units = at_path(t->root, "model.layers.1.units");
    ck_assert_str_eq(units->file, "override 'model.layers.coding.units=20'");
    ck_assert_int_eq(units->line, 1);
    ck_assert_int_eq(units->col, 27);
    ck_assert_str_eq(at_path(t->root, "model.layers.1.name")->file, "t.yaml");
    yf__tree_free(t);

    /* replacing a whole list element, and an empty value */
    const char *ov2[] = {"model.layers.a={name: b, units: 9}", "train.epochs="};
    t = override(text, ov2, 2, &err, &rc);
    ck_assert_msg(rc == 0, "%s", yf_error_format(&err));
    assert_scalar(t, "model.layers.0.name", "b");
    assert_scalar(t, "model.layers.0.units", "9");
    assert_scalar(t, "model.layers.1.name", "coding");
    assert_scalar(t, "train.epochs", "");
    yf__tree_free(t);
}
END_TEST

static void override_fails(const char *ov, yf_status code, const char *want)
{
    yf_error err = {0};
    int rc;
    yf__tree_free(override("a: {b: 1}\nlist: [{name: x}, {name: y}]\n", &ov, 1, &err, &rc));
    ck_assert_msg(rc == (int)code, "%s: rc %d", ov, rc);
    ck_assert_str_eq(yf_error_format(&err), want);
}

START_TEST(test_bad_overrides)
{
    override_fails("a.b", YF_EUSAGE, "override 'a.b' is not of the form dotted.key=value");
    override_fails("=1", YF_EUSAGE, "override '=1' is not of the form dotted.key=value");
    override_fails("train..epochs=1", YF_EUSAGE, "override 'train..epochs=1': the key 'train..epochs' has an empty step");
    override_fails(".train=1", YF_EUSAGE, "override '.train=1': the key '.train' has an empty step");
    override_fails("train.=1", YF_EUSAGE, "override 'train.=1': the key 'train.' has an empty step");
    override_fails("train. epochs=1", YF_EUSAGE, "override 'train. epochs=1': the key 'train. epochs' has a padded step");
    override_fails("train.epochs =1", YF_EUSAGE, "override 'train.epochs =1': the key 'train.epochs ' has a padded step");
    override_fails("list.z.k=1", YF_EUSAGE, "override 'list.z.k=1': no element 'z' in the list");
    override_fails("list.5=1", YF_EUSAGE, "override 'list.5=1': no element '5' in the list");
    override_fails("a.b.c=1", YF_EUSAGE, "override 'a.b.c=1': 'c' is inside a scalar value");
    override_fails("a.b=[1", YF_ESPEC,
                   "override 'a.b=[1':2:1: YAML syntax error: did not find expected ',' or ']' "
                   "(in a flow sequence that starts at line 1, column 1)");
}
END_TEST

/* What the emitter writes, the parser reads back as the same tree. */
START_TEST(test_emit_round_trip)
{
    const char *text = "plain: word\n"
                       "number: -1.5e-3\n"
                       "quoted_number: \"42\"\n"
                       "empty: ''\n"
                       "colon: 'a: b'\n"
                       "hash: 'x #y'\n"
                       "lead: '-x'\n"
                       "dash_digit: -3\n"
                       "brackets: '[x]'\n"
                       "tab: \"a\\tb\"\n"
                       "newline: \"a\\nb\"\n"
                       "quote: 'say \"hi\"'\n"
                       "backslash: 'c:\\dir'\n"
                       "star: '*x'\n"
                       "unicode: 'déjà vu'\n"
                       "trailing_space: 'x '\n"
                       "nested:\n"
                       "  deeper:\n"
                       "    - [1, 2]\n"
                       "    - {k: [a, {z: 1}]}\n"
                       "  flat: {a: 1, b: [2, 3]}\n"
                       "  seq_of_maps: [{a: 1}, {b: 2}]\n"
                       "  empty_map: {}\n"
                       "  empty_seq: []\n";
    yf__tree *t = parse(text);
    char *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    FILE *f = open_memstream(&a, &la);
    yf__tree_emit(t->root, f);
    fclose(f);
    yf_error err = {0};
    yf__tree *t2 = yf__tree_parse(a, la, "emitted", &err);
    ck_assert_msg(t2 != NULL, "%s\n%s", yf_error_format(&err), a);
    f = open_memstream(&b, &lb);
    yf__tree_emit(t2->root, f);
    fclose(f);
    ck_assert_str_eq(a, b);
    /* every scalar reads back with its text and quoting */
    const char *keys[] = {"plain", "number", "quoted_number", "empty", "colon", "hash", "lead",
                          "dash_digit", "brackets", "tab", "newline", "quote", "backslash",
                          "star", "unicode", "trailing_space"};
    for (size_t i = 0; i < YF__ARRAY_LEN(keys); i++) {
        const yf__node *x = at_path(t->root, keys[i]), *y = at_path(t2->root, keys[i]);
        ck_assert_msg(!strcmp(x->str, y->str), "%s: '%s' came back as '%s'", keys[i], x->str,
                      y->str);
        ck_assert_msg(x->quoted == y->quoted || x->str[0] == 0, "%s: quoting changed", keys[i]);
    }
    ck_assert_str_eq(at_path(t2->root, "nested.deeper.1.k.1.z")->str, "1");
    ck_assert_int_eq(at_path(t2->root, "nested.empty_map")->kind, YF__MAP);
    ck_assert_int_eq(at_path(t2->root, "nested.empty_seq")->kind, YF__SEQ);
    free(a);
    free(b);
    yf__tree_free(t);
    yf__tree_free(t2);
}
END_TEST

START_TEST(test_load_missing)
{
    yf_error err = {0};
    ck_assert(yf__tree_load("no-such-dir/spec.yaml", &err) == NULL);
    ck_assert_int_eq(err.code, YF_ESPEC);
    ck_assert_str_eq(yf_error_format(&err),
                     "no-such-dir/spec.yaml: cannot open spec: No such file or directory");
}
END_TEST

/* ---- error.c ------------------------------------------------------------- */

START_TEST(test_error_format)
{
    yf_error err = {0};
    ck_assert_int_eq(yf__fail(&err, YF_EDATA, "bad %s", "thing"), YF_EDATA);
    ck_assert_str_eq(yf_error_format(&err), "bad thing");
    snprintf(err.file, sizeof err.file, "f.idx");
    ck_assert_str_eq(yf_error_format(&err), "f.idx: bad thing");
    yf__node at = {.file = "m.yaml", .line = 3, .col = 7};
    ck_assert_int_eq(yf__fail_at(&err, &at, YF_ESPEC, "oops %d", 1), YF_ESPEC);
    ck_assert_str_eq(yf_error_format(&err), "m.yaml:3:7: oops 1");
    ck_assert_int_eq(yf__fail(NULL, YF_ERUN, "no error object"), YF_ERUN);
    /* a message longer than the buffer is cut, not overflowed */
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    yf__fail(&err, YF_EIO, "%s", big);
    ck_assert_int_eq(strlen(err.msg), sizeof err.msg - 1);
}
END_TEST

START_TEST(test_status_codes)
{
    ck_assert_str_eq(yf_status_name(YF_OK), "ok");
    ck_assert_str_eq(yf_status_name(YF_ESPEC), "invalid model spec");
    ck_assert_str_eq(yf_status_name((yf_status)-99), "unknown error");
    /* exit codes: 0 ok, 1 runtime failure, 2 bad input */
    ck_assert_int_eq(yf_status_exit_code(YF_OK), 0);
    ck_assert_int_eq(yf_status_exit_code(YF_ESPEC), 2);
    ck_assert_int_eq(yf_status_exit_code(YF_EDATA), 2);
    ck_assert_int_eq(yf_status_exit_code(YF_ECKPT), 2);
    ck_assert_int_eq(yf_status_exit_code(YF_EUSAGE), 2);
    ck_assert_int_eq(yf_status_exit_code(YF_EIO), 1);
    ck_assert_int_eq(yf_status_exit_code(YF_ENOMEM), 1);
    ck_assert_int_eq(yf_status_exit_code(YF_ERUN), 1);
}
END_TEST

START_TEST(test_did_you_mean)
{
    ck_assert_int_eq(yf__edit_distance("", ""), 0);
    ck_assert_int_eq(yf__edit_distance("units", "unit"), 1);
    ck_assert_int_eq(yf__edit_distance("kitten", "sitting"), 3);
    ck_assert_int_eq(yf__edit_distance("abc", ""), 3);
    const char *keys[] = {"name", "type", "units", "activation", "log_var", "input"};
    ck_assert_str_eq(yf__closest("unit", keys, 6), "units");
    ck_assert_str_eq(yf__closest("activaton", keys, 6), "activation");
    ck_assert_str_eq(yf__closest("log_variance", keys, 6), "log_var");
    ck_assert_str_eq(yf__closest("inptu", keys, 6), "input");
    ck_assert_ptr_eq(yf__closest("stddev", keys, 6), NULL);
    ck_assert_ptr_eq(yf__closest("x", keys, 0), NULL);
    char longword[100];
    memset(longword, 'a', 99);
    longword[99] = 0;
    ck_assert_ptr_eq(yf__closest(longword, keys, 6), NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tree");
    TCase *tc = tcase_create("tree");
    tcase_add_test(tc, test_positions);
    tcase_add_test(tc, test_syntax_errors);
    tcase_add_test(tc, test_aliases);
    tcase_add_test(tc, test_build_nodes);
    tcase_add_test(tc, test_overrides);
    tcase_add_test(tc, test_bad_overrides);
    tcase_add_test(tc, test_emit_round_trip);
    tcase_add_test(tc, test_load_missing);
    suite_add_tcase(s, tc);
    TCase *tc2 = tcase_create("errors");
    tcase_add_test(tc2, test_error_format);
    tcase_add_test(tc2, test_status_codes);
    tcase_add_test(tc2, test_did_you_mean);
    suite_add_tcase(s, tc2);
    return tu_run(s);
}
