/* PNG pictures drawn with cairo (see picture.h). Text is cairo's toy font
 * API with the "DejaVu Sans" face that fontconfig finds; files are written
 * to PATH.tmp and renamed, so a failed write leaves an earlier picture. */
#include "picture.h"
#include "internal.h"

#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define FONT "DejaVu Sans"

/* Tableau's ten colours, the usual palette for classes. */
static const double palette[10][3] = {
    {0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173},
    {0.839, 0.153, 0.157}, {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294},
    {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498}, {0.737, 0.741, 0.133},
    {0.090, 0.745, 0.812},
};

static int finish(cairo_surface_t *surface, cairo_t *cr, const char *path, yf_error *err)
{
    cairo_status_t st = cr ? cairo_status(cr) : CAIRO_STATUS_SUCCESS;
    if (cr)
        cairo_destroy(cr);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_status(surface);
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_write_to_png(surface, tmp);
    cairo_surface_destroy(surface);
    if (st != CAIRO_STATUS_SUCCESS) {
        remove(tmp);
        return yf__fail(err, st == CAIRO_STATUS_NO_MEMORY ? YF_ENOMEM : YF_EIO,
                        "cannot write %s: %s", path, cairo_status_to_string(st));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return yf__fail(err, YF_EIO, "cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

static cairo_t *page(int w, int h, cairo_surface_t **surface)
{
    *surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    cairo_t *cr = cairo_create(*surface);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    return cr;
}

static double text_width(cairo_t *cr, const char *s)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

/* Text anchored at (x, y): ax 0 left, 0.5 centre, 1 right; ay likewise
 * from the top (0) to the bottom (1) of the font's ascent. */
static void text_at(cairo_t *cr, double x, double y, double ax, double ay, const char *s)
{
    cairo_font_extents_t fe;
    cairo_font_extents(cr, &fe);
    cairo_move_to(cr, x - ax * text_width(cr, s), y + (1 - ay) * fe.ascent);
    cairo_show_text(cr, s);
}

/* ---- grids ------------------------------------------------------------------ */

int yf__grid_png(const yf__grid *gr, const char *path, yf_error *err)
{
    int blocks = gr->blocks > 1 ? gr->blocks : 1;
    if (blocks > gr->rows)
        blocks = gr->rows > 0 ? gr->rows : 1;
    int per_block = (gr->rows + blocks - 1) / blocks;
    int s = gr->scale > 0 ? gr->scale : 1, gap = gr->gap;
    int cw = gr->tw * s, ch = gr->th * s;
    /* measure the labels on a scratch surface */
    cairo_surface_t *probe_s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 1);
    cairo_t *probe = cairo_create(probe_s);
    cairo_select_font_face(probe, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(probe, 12);
    int left = 0, top = 0;
    if (gr->row_labels) {
        double w = 0;
        for (int r = 0; r < gr->rows; r++)
            w = fmax(w, text_width(probe, gr->row_labels[r]));
        left = (int)ceil(w) + 8;
    }
    cairo_set_font_size(probe, 14);
    int title_w = gr->title ? (int)ceil(text_width(probe, gr->title)) + 28 : 0;
    cairo_status_t pst = cairo_status(probe);
    cairo_destroy(probe);
    cairo_surface_destroy(probe_s);
    if (pst != CAIRO_STATUS_SUCCESS) /* no measures: the labels would overlap the tiles */
        return yf__fail(err, pst == CAIRO_STATUS_NO_MEMORY ? YF_ENOMEM : YF_EIO,
                        "cannot draw %s: %s", path, cairo_status_to_string(pst));
    if (gr->title)
        top += 22;
    if (gr->col_labels)
        top += 18;
    int block_w = left + gr->cols * (cw + gap);
    int width = gap + blocks * block_w + (blocks - 1) * 12;
    if (width < title_w) /* a wider page, the grid on its left */
        width = title_w;
    int height = gap + top + per_block * (ch + gap);
    if (width > 32767 || height > 32767 || gr->rows < 1 || gr->cols < 1)
        return yf__fail(err, YF_EUSAGE, "%s: a grid of %d × %d tiles of %d × %d at scale %d "
                        "does not fit in a picture", path, gr->rows, gr->cols, gr->th, gr->tw, s);
    cairo_surface_t *surface;
    cairo_t *cr = page(width, height, &surface);
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS) /* no pixels to write to */
        return finish(surface, cr, path, err);
    cairo_surface_flush(surface);
    unsigned char *px = cairo_image_surface_get_data(surface);
    int stride = cairo_image_surface_get_stride(surface);
    size_t tile = (size_t)gr->th * gr->tw;
    for (int r = 0; r < gr->rows; r++) {
        int b = r / per_block, rb = r % per_block;
        for (int c = 0; c < gr->cols; c++) {
            const float *t = gr->tiles + ((size_t)r * gr->cols + c) * tile;
            if (isnan(t[0]))
                continue;
            int x0 = gap + b * (block_w + 12) + left + c * (cw + gap);
            int y0 = gap + top + rb * (ch + gap);
            for (int i = 0; i < ch; i++) {
                uint32_t *row = (uint32_t *)(px + (size_t)(y0 + i) * stride) + x0;
                for (int j = 0; j < cw; j++) {
                    float v = t[(i / s) * gr->tw + j / s];
                    v = v > 0 ? (v < 1 ? v : 1) : 0; /* NaN inside: black */
                    uint32_t g = (uint32_t)lrintf(v * 255);
                    row[j] = g << 16 | g << 8 | g;
                }
            }
        }
    }
    cairo_surface_mark_dirty(surface);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_font_size(cr, 12);
    for (int b = 0; b < blocks; b++) {
        int bx = gap + b * (block_w + 12);
        if (gr->col_labels)
            for (int c = 0; c < gr->cols; c++)
                text_at(cr, bx + left + c * (cw + gap) + cw / 2.0, gap + top - 16, 0.5, 0,
                        gr->col_labels[c]);
        if (gr->row_labels)
            for (int rb = 0; rb < per_block && b * per_block + rb < gr->rows; rb++)
                text_at(cr, bx + left - 6, gap + top + rb * (ch + gap) + ch / 2.0, 1, 0.5,
                        gr->row_labels[b * per_block + rb]);
    }
    if (gr->title) {
        cairo_set_font_size(cr, 14);
        text_at(cr, width / 2.0, 4, 0.5, 0, gr->title);
    }
    return finish(surface, cr, path, err);
}

/* ---- axes ------------------------------------------------------------------- */

/* A "nice" tick step (1, 2 or 5 × 10^k) for about `want` ticks over span. */
static double nice_step(double span, int want)
{
    double raw = span / want, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static void fmt_tick(char *buf, size_t cap, double v, double step)
{
    if (fabs(v) < step * 1e-9)
        v = 0;
    if (fabs(v) >= 1e5 || (fabs(v) < 1e-3 && v != 0))
        snprintf(buf, cap, "%.2g", v);
    else {
        int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
        snprintf(buf, cap, "%.*f", decimals, v);
    }
}

typedef struct {
    double x0, y0, w, h;              /* plotting area on the page */
    double xmin, xmax, ymin, ymax;    /* data range (log10 of y when log_y) */
    bool log_y;
} frame;

static double fx(const frame *f, double x) { return f->x0 + (x - f->xmin) / (f->xmax - f->xmin) * f->w; }
static double fy(const frame *f, double y)
{
    if (f->log_y)
        y = log10(y);
    return f->y0 + f->h - (y - f->ymin) / (f->ymax - f->ymin) * f->h;
}

static void widen(double *lo, double *hi)
{
    if (!(*hi > *lo)) {
        double d = fabs(*lo) > 0 ? fabs(*lo) * 0.05 : 0.5;
        *lo -= d, *hi += d;
    }
}

/* Draws axes, ticks, tick labels, axis labels and the title around f. */
static void draw_axes(cairo_t *cr, frame *f, const char *title, const char *xlabel,
                      const char *ylabel, bool integer_x)
{
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, f->x0 + 0.5, f->y0 + 0.5, f->w, f->h);
    cairo_stroke(cr);
    cairo_set_font_size(cr, 11);
    char buf[64];
    double step = nice_step(f->xmax - f->xmin, 6);
    if (integer_x && step < 1)
        step = 1;
    for (double t = ceil(f->xmin / step - 1e-9) * step; t <= f->xmax + step * 1e-9; t += step) {
        double x = round(fx(f, t)) + 0.5;
        cairo_move_to(cr, x, f->y0 + f->h);
        cairo_line_to(cr, x, f->y0 + f->h + 5);
        cairo_stroke(cr);
        fmt_tick(buf, sizeof buf, t, step);
        text_at(cr, x, f->y0 + f->h + 8, 0.5, 0, buf);
    }
    if (f->log_y) {
        for (double e = floor(f->ymin); e <= f->ymax + 1e-9; e += 1) {
            for (int k = 1; k <= 9; k++) {
                double v = log10(k) + e;
                if (v < f->ymin - 1e-9 || v > f->ymax + 1e-9)
                    continue;
                double y = round(f->y0 + f->h - (v - f->ymin) / (f->ymax - f->ymin) * f->h) + 0.5;
                cairo_move_to(cr, f->x0, y);
                cairo_line_to(cr, f->x0 - (k == 1 ? 5 : 3), y);
                cairo_stroke(cr);
                if (k == 1 || (f->ymax - f->ymin < 1.2 && (k == 2 || k == 5))) {
                    snprintf(buf, sizeof buf, "%g", k * pow(10, e));
                    text_at(cr, f->x0 - 8, y, 1, 0.5, buf);
                }
            }
        }
    } else {
        double ys = nice_step(f->ymax - f->ymin, 6);
        for (double t = ceil(f->ymin / ys - 1e-9) * ys; t <= f->ymax + ys * 1e-9; t += ys) {
            double y = round(fy(f, t)) + 0.5;
            cairo_move_to(cr, f->x0, y);
            cairo_line_to(cr, f->x0 - 5, y);
            cairo_stroke(cr);
            fmt_tick(buf, sizeof buf, t, ys);
            text_at(cr, f->x0 - 8, y, 1, 0.5, buf);
        }
    }
    cairo_set_font_size(cr, 12);
    if (xlabel)
        text_at(cr, f->x0 + f->w / 2, f->y0 + f->h + 26, 0.5, 0, xlabel);
    if (ylabel) {
        cairo_save(cr);
        cairo_translate(cr, f->x0 - 62, f->y0 + f->h / 2);
        cairo_rotate(cr, -M_PI / 2);
        text_at(cr, 0, 0, 0.5, 0, ylabel);
        cairo_restore(cr);
    }
    if (title) {
        /* shrunk to fit the page when long */
        cairo_set_font_size(cr, 14);
        double room = 2 * fmin(f->x0 + f->w / 2, cairo_image_surface_get_width(cairo_get_target(cr)) -
                                                  (f->x0 + f->w / 2)) - 12;
        double w = text_width(cr, title);
        if (w > room)
            cairo_set_font_size(cr, 14 * room / w);
        text_at(cr, f->x0 + f->w / 2, f->y0 - 26, 0.5, 0, title);
    }
}

/* A legend box in the corner of f that covers the fewest of the series'
 * points (top right when none is given or on ties): a swatch (line or dot)
 * and a label per entry. */
static void draw_legend(cairo_t *cr, const frame *f, const char *const *labels, int n,
                        bool dots, const yf__series *series, int n_series)
{
    cairo_set_font_size(cr, 11);
    double w = 0;
    for (int i = 0; i < n; i++)
        w = fmax(w, text_width(cr, labels[i]));
    double bw = w + 36, bh = n * 16 + 8, bx = f->x0 + f->w - bw - 8, by = f->y0 + 8;
    const double cx[4] = {f->x0 + f->w - bw - 8, f->x0 + 8, f->x0 + f->w - bw - 8, f->x0 + 8};
    const double cy[4] = {f->y0 + 8, f->y0 + 8, f->y0 + f->h - bh - 8, f->y0 + f->h - bh - 8};
    int best = -1;
    for (int c = 0; c < 4 && series; c++) {
        int covered = 0;
        for (int k = 0; k < n_series; k++)
            for (int i = 0; i < series[k].n; i++) {
                double x = series[k].x[i], y = series[k].y[i];
                if (!isfinite(x) || !isfinite(y) || (f->log_y && y <= 0))
                    continue;
                double px = fx(f, x), py = fy(f, y);
                covered += px >= cx[c] - 4 && px <= cx[c] + bw + 4 && py >= cy[c] - 4 &&
                           py <= cy[c] + bh + 4;
            }
        if (best < 0 || covered < best) {
            best = covered;
            bx = cx[c], by = cy[c];
        }
    }
    cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
    cairo_rectangle(cr, bx, by, bw, bh);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    for (int i = 0; i < n; i++) {
        const double *c = palette[i % 10];
        double y = by + 12 + i * 16;
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        if (dots) {
            cairo_arc(cr, bx + 15, y, 3.5, 0, 2 * M_PI);
            cairo_fill(cr);
        } else {
            cairo_set_line_width(cr, 2);
            cairo_move_to(cr, bx + 6, y);
            cairo_line_to(cr, bx + 26, y);
            cairo_stroke(cr);
        }
        cairo_set_source_rgb(cr, 0, 0, 0);
        text_at(cr, bx + 30, y, 0, 0.5, labels[i]);
    }
}

enum { PANEL_W = 520, PANEL_H = 380, PAD_L = 84, PAD_R = 16, PAD_T = 40, PAD_B = 48 };

int yf__plot_png(const yf__panel *panels, int n_panels, const char *path, yf_error *err)
{
    cairo_surface_t *surface;
    cairo_t *cr = page(PANEL_W * n_panels, PANEL_H, &surface);
    for (int p = 0; p < n_panels; p++) {
        const yf__panel *pn = &panels[p];
        frame f = {.x0 = p * PANEL_W + PAD_L, .y0 = PAD_T, .w = PANEL_W - PAD_L - PAD_R,
                   .h = PANEL_H - PAD_T - PAD_B, .xmin = INFINITY, .xmax = -INFINITY,
                   .ymin = INFINITY, .ymax = -INFINITY, .log_y = pn->log_y};
        bool integer_x = true;
        for (int k = 0; k < pn->n_series; k++)
            for (int i = 0; i < pn->series[k].n; i++) {
                double x = pn->series[k].x[i], y = pn->series[k].y[i];
                if (!isfinite(x) || !isfinite(y) || (f.log_y && y <= 0))
                    continue;
                if (f.log_y)
                    y = log10(y);
                integer_x &= x == floor(x);
                f.xmin = fmin(f.xmin, x), f.xmax = fmax(f.xmax, x);
                f.ymin = fmin(f.ymin, y), f.ymax = fmax(f.ymax, y);
            }
        if (!isfinite(f.xmin))
            f.xmin = 0, f.xmax = 1, f.ymin = 0, f.ymax = 1;
        widen(&f.xmin, &f.xmax);
        widen(&f.ymin, &f.ymax);
        double margin = (f.ymax - f.ymin) * 0.05;
        f.ymin -= margin, f.ymax += margin;
        draw_axes(cr, &f, pn->title, pn->xlabel, pn->ylabel, integer_x);
        const char *labels[10];
        int nl = 0;
        cairo_save(cr);
        cairo_rectangle(cr, f.x0, f.y0, f.w, f.h);
        cairo_clip(cr);
        for (int k = 0; k < pn->n_series; k++) {
            const yf__series *sr = &pn->series[k];
            const double *c = palette[k % 10];
            cairo_set_source_rgb(cr, c[0], c[1], c[2]);
            cairo_set_line_width(cr, 2);
            bool pen = false;
            for (int i = 0; i < sr->n; i++) {
                double x = sr->x[i], y = sr->y[i];
                if (!isfinite(x) || !isfinite(y) || (f.log_y && y <= 0)) {
                    pen = false;
                    continue;
                }
                if (pen)
                    cairo_line_to(cr, fx(&f, x), fy(&f, y));
                else
                    cairo_move_to(cr, fx(&f, x), fy(&f, y));
                pen = true;
            }
            cairo_stroke(cr);
            for (int i = 0; i < sr->n; i++) /* a dot per point: one-epoch runs show */
                if (isfinite(sr->x[i]) && isfinite(sr->y[i]) && !(f.log_y && sr->y[i] <= 0)) {
                    cairo_arc(cr, fx(&f, sr->x[i]), fy(&f, sr->y[i]), 2.5, 0, 2 * M_PI);
                    cairo_fill(cr);
                }
            if (nl < 10)
                labels[nl++] = sr->label;
        }
        cairo_restore(cr);
        if (nl)
            draw_legend(cr, &f, labels, nl, false, pn->series, pn->n_series);
    }
    return finish(surface, cr, path, err);
}

int yf__scatter_png(const float *xy, const int *cls, size_t n, int classes, const char *title,
                    const char *xlabel, const char *ylabel, const char *path, yf_error *err)
{
    cairo_surface_t *surface;
    int W = 640, H = 560;
    cairo_t *cr = page(W, H, &surface);
    frame f = {.x0 = PAD_L, .y0 = PAD_T, .w = W - PAD_L - PAD_R - 70, .h = H - PAD_T - PAD_B,
               .xmin = INFINITY, .xmax = -INFINITY, .ymin = INFINITY, .ymax = -INFINITY};
    for (size_t i = 0; i < n; i++)
        if (isfinite(xy[2 * i]) && isfinite(xy[2 * i + 1])) {
            f.xmin = fmin(f.xmin, xy[2 * i]), f.xmax = fmax(f.xmax, xy[2 * i]);
            f.ymin = fmin(f.ymin, xy[2 * i + 1]), f.ymax = fmax(f.ymax, xy[2 * i + 1]);
        }
    if (!isfinite(f.xmin))
        f.xmin = 0, f.xmax = 1, f.ymin = 0, f.ymax = 1;
    widen(&f.xmin, &f.xmax);
    widen(&f.ymin, &f.ymax);
    double mx = (f.xmax - f.xmin) * 0.03, my = (f.ymax - f.ymin) * 0.03;
    f.xmin -= mx, f.xmax += mx, f.ymin -= my, f.ymax += my;
    draw_axes(cr, &f, title, xlabel, ylabel, false);
    cairo_save(cr);
    cairo_rectangle(cr, f.x0, f.y0, f.w, f.h);
    cairo_clip(cr);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(xy[2 * i]) || !isfinite(xy[2 * i + 1]))
            continue;
        const double *c = palette[(cls ? cls[i] : 0) % 10];
        cairo_set_source_rgba(cr, c[0], c[1], c[2], 0.55);
        cairo_arc(cr, fx(&f, xy[2 * i]), fy(&f, xy[2 * i + 1]), 1.6, 0, 2 * M_PI);
        cairo_fill(cr);
    }
    cairo_restore(cr);
    /* the legend outside the plotting area, on the right */
    const char *names[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    frame lf = f;
    lf.w += 70 + 4;
    if (cls && classes > 0)
        draw_legend(cr, &lf, names, classes < 10 ? classes : 10, true, NULL, 0);
    return finish(surface, cr, path, err);
}

int yf__heatmap_png(const double *counts, int rows, int cols, const char *title,
                    const char *row_axis, const char *col_axis, const char *path, yf_error *err)
{
    int cell = 44, L = 80, T = 70;
    int W = L + cols * cell + 20, H = T + rows * cell + 20;
    cairo_surface_t *surface;
    cairo_t *cr = page(W, H, &surface);
    char buf[32];
    for (int r = 0; r < rows; r++) {
        double total = 0;
        for (int c = 0; c < cols; c++)
            total += counts[r * cols + c];
        for (int c = 0; c < cols; c++) {
            double v = counts[r * cols + c], share = total > 0 ? v / total : 0;
            /* white to the palette's blue, by share of the row */
            double t = sqrt(share);
            cairo_set_source_rgb(cr, 1 - t * (1 - palette[0][0]), 1 - t * (1 - palette[0][1]),
                                 1 - t * (1 - palette[0][2]));
            cairo_rectangle(cr, L + c * cell, T + r * cell, cell, cell);
            cairo_fill(cr);
            snprintf(buf, sizeof buf, "%.0f", v);
            cairo_set_font_size(cr, v >= 1000 ? 11 : 12);
            if (t > 0.6)
                cairo_set_source_rgb(cr, 1, 1, 1);
            else
                cairo_set_source_rgb(cr, 0, 0, 0);
            if (v > 0)
                text_at(cr, L + c * cell + cell / 2.0, T + r * cell + cell / 2.0, 0.5, 0.5, buf);
        }
    }
    cairo_set_source_rgb(cr, 0.5, 0.5, 0.5);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, L + 0.5, T + 0.5, cols * cell, rows * cell);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_font_size(cr, 12);
    for (int c = 0; c < cols; c++) {
        snprintf(buf, sizeof buf, "%d", c);
        text_at(cr, L + c * cell + cell / 2.0, T - 16, 0.5, 0, buf);
    }
    for (int r = 0; r < rows; r++) {
        snprintf(buf, sizeof buf, "%d", r);
        text_at(cr, L - 8, T + r * cell + cell / 2.0, 1, 0.5, buf);
    }
    text_at(cr, L + cols * cell / 2.0, T - 34, 0.5, 0, col_axis);
    cairo_save(cr);
    cairo_translate(cr, L - 40, T + rows * cell / 2.0);
    cairo_rotate(cr, -M_PI / 2);
    text_at(cr, 0, 0, 0.5, 0, row_axis);
    cairo_restore(cr);
    cairo_set_font_size(cr, 14);
    text_at(cr, W / 2.0, 6, 0.5, 0, title);
    return finish(surface, cr, path, err);
}
