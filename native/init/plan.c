/*
 * Reading the plan: all of it, checked against the table generated from pyrt/steps.py
 * (steps.h), before the first step runs. Per step: its name, then each field in order, a list
 * as its count and then its items; every token a NUL-terminated string, numbers in decimal.
 *
 * Every field is typed here (union arg), so no step function parses a string, and anything
 * that cannot be read exactly fails the whole plan, naming the step and the field: an unknown
 * step, a missing field, a number with a sign, a space, a trailing letter or too many digits, a
 * bool other than 0 or 1, an fd above INT_MAX, a list count beyond what the plan holds. No
 * fixed limit on steps, fields or list items: each token takes at least a byte of the plan,
 * which bounds them all.
 */
#define _GNU_SOURCE
#define PYRT_STEP_TABLE
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "init.h"

struct reader {
	char *p, *end;
	char *err;
	size_t errlen;
	size_t index;   /* the step being read */
	const char *step, *field;
};

/* Describe what is wrong with the current field; returns -1 for the caller to return. */
static int __attribute__((format(printf, 2, 3))) bad(struct reader *r, const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	if (r->field)
		snprintf(r->err, r->errlen, "malformed plan: step %zu (%s): field %s: %s", r->index, r->step, r->field, why);
	else if (r->step)
		snprintf(r->err, r->errlen, "malformed plan: step %zu (%s): %s", r->index, r->step, why);
	else
		snprintf(r->err, r->errlen, "malformed plan: step %zu: %s", r->index, why);
	return -1;
}

/* The next token, or NULL at the end of the plan (or before a last token without its NUL). */
static const char *token(struct reader *r)
{
	if (r->p >= r->end)
		return NULL;
	char *nul = memchr(r->p, '\0', (size_t)(r->end - r->p));
	if (!nul)
		return NULL;
	const char *t = r->p;
	r->p = nul + 1;
	return t;
}

/* Decimal digits only (no sign, no space), within 64 bits. */
static int read_u(const char *t, unsigned long long *v)
{
	char *end;
	if (!isdigit((unsigned char)*t))
		return -1;
	errno = 0;
	*v = strtoull(t, &end, 10);
	return errno || *end ? -1 : 0;
}

static int read_i(const char *t, long long *v)
{
	char *end;
	if (!isdigit((unsigned char)(*t == '-' ? t[1] : *t)))
		return -1;
	errno = 0;
	*v = strtoll(t, &end, 10);
	return errno || *end ? -1 : 0;
}

/* One value of KIND (i u s b f) from token T into A; on error ITEM (>= 0) names the list item. */
static int value(struct reader *r, char kind, const char *t, union arg *a, long item)
{
	unsigned long long u;
	char where[48] = "";
	if (!t)
		return item < 0 ? bad(r, "missing (the plan ends)") : bad(r, "item %ld: missing (the plan ends)", item);
	if (item >= 0)
		snprintf(where, sizeof where, "item %ld: ", item);
	switch (kind) {
	case 's':
		a->s = t;
		return 0;
	case 'u':
		return read_u(t, &a->u) ? bad(r, "%sbad number \"%s\"", where, t) : 0;
	case 'i':
		return read_i(t, &a->i) ? bad(r, "%sbad number \"%s\"", where, t) : 0;
	case 'b':
		if ((t[0] != '0' && t[0] != '1') || t[1])
			return bad(r, "%snot a bool (0 or 1): \"%s\"", where, t);
		a->b = t[0] == '1';
		return 0;
	case 'f':
		if (read_u(t, &u) || u > INT_MAX)
			return bad(r, "%sbad fd \"%s\"", where, t);
		a->fd = (int)u;
		return 0;
	}
	return bad(r, "unknown kind '%c' in steps.h", kind);
}

/* A list of KIND (S I F): its count, then that many items. */
static int list(struct reader *r, char kind, union arg *a)
{
	unsigned long long count;
	const char *t = token(r);
	if (!t)
		return bad(r, "missing (the plan ends)");
	if (read_u(t, &count))
		return bad(r, "bad count \"%s\"", t);
	if (count > (unsigned long long)(r->end - r->p))   /* every item takes a byte at least */
		return bad(r, "count %llu is more than the plan holds", count);
	size_t n = (size_t)count;
	char **strs = kind == 'S' ? calloc(n + 1, sizeof *strs) : NULL;   /* + NULL: an argv */
	long long *ints = kind == 'I' ? calloc(n ? n : 1, sizeof *ints) : NULL;
	int *fds = kind == 'F' ? calloc(n ? n : 1, sizeof *fds) : NULL;
	if (!strs && !ints && !fds)
		return bad(r, "out of memory");
	for (size_t i = 0; i < n; i++) {
		union arg item;
		if (value(r, (char)tolower(kind), token(r), &item, (long)i) < 0)
			return -1;
		if (strs)
			strs[i] = (char *)item.s;
		else if (ints)
			ints[i] = item.i;
		else
			fds[i] = item.fd;
	}
	if (strs)
		a->strs.n = n, a->strs.v = strs;
	else if (ints)
		a->ints.n = n, a->ints.v = ints;
	else
		a->fds.n = n, a->fds.v = fds;
	return 0;
}

static int step(struct reader *r, struct step *s)
{
	const char *name = token(r);
	if (!name)
		return bad(r, "a last token without its NUL byte");
	size_t id;
	for (id = 0; id < STEP_COUNT; id++)
		if (strcmp(name, STEP_TYPES[id].name) == 0)
			break;
	if (id == STEP_COUNT)
		return bad(r, "unknown step \"%s\"", name);
	const struct step_type *t = &STEP_TYPES[id];
	r->step = t->name;
	s->id = (enum step_id)id;
	s->args = calloc(strlen(t->kinds) + 1, sizeof *s->args);
	if (!s->args)
		return bad(r, "out of memory");
	for (size_t f = 0; t->kinds[f]; f++) {
		r->field = t->fields[f];
		char kind = t->kinds[f];
		if (isupper((unsigned char)kind) ? list(r, kind, &s->args[f]) < 0
		    : value(r, kind, token(r), &s->args[f], -1) < 0)
			return -1;
	}
	r->step = r->field = NULL;
	return 0;
}

int plan_parse(char *buf, size_t len, struct step **steps, size_t *n, char *err, size_t errlen)
{
	struct reader r = { .p = buf, .end = buf + len, .err = err, .errlen = errlen };
	size_t cap = 0;
	*steps = NULL;
	for (r.index = 0; r.p < r.end; r.index++) {
		if (r.index == cap) {
			cap = cap ? cap * 2 : 256;
			struct step *more = realloc(*steps, cap * sizeof **steps);
			if (!more) {
				*n = r.index;
				return bad(&r, "out of memory");
			}
			*steps = more;
		}
		if (step(&r, &(*steps)[r.index]) < 0) {
			*n = r.index;
			return -1;
		}
	}
	*n = r.index;
	return 0;
}
