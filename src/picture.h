/* Pictures as PNG files, drawn with cairo: grids of images, line plots,
 * scatter plots and heat maps. Nothing here knows about models; show.c
 * decides what to draw. Every writer replaces its file atomically and
 * reports cairo's failures through yf_error. */
#ifndef YAFLOW_PICTURE_H
#define YAFLOW_PICTURE_H

#include "yaflow.h"

#include <stdbool.h>

/* A grid of grey images ("tiles"), `rows` × `cols` of th × tw values each.
 * Pixel (i, j) of tile (r, c) is round(255 · v) with v clamped to [0, 1],
 * drawn as a scale × scale square at
 *   x = gap + left + c · (tw · scale + gap) + j · scale,
 *   y = gap + top  + r · (th · scale + gap) + i · scale
 * on a white page, where left and top are the widths of the row labels and
 * the heights of the title and column labels (0 without them). A tile
 * whose first value is NaN is left empty. With blocks > 1 the rows are cut
 * into that many blocks placed side by side, each with its own labels. */
typedef struct yf__grid {
    int rows, cols, th, tw;
    const float *tiles; /* tile (r, c) at tiles + (r · cols + c) · th · tw */
    int scale, gap, blocks;
    const char *title;              /* NULL: none */
    const char *const *row_labels;  /* NULL: none; else one per row */
    const char *const *col_labels;  /* NULL: none; else one per column */
} yf__grid;

int yf__grid_png(const yf__grid *grid, const char *path, yf_error *err);

/* One line of a plot: n points (x[i], y[i]); NaN values are gaps. */
typedef struct yf__series {
    const char *label;
    const double *x, *y;
    int n;
} yf__series;

/* One panel of a plot: axes with ticks, labels and a legend. */
typedef struct yf__panel {
    const char *title, *xlabel, *ylabel;
    const yf__series *series;
    int n_series;
    bool log_y;
} yf__panel;

/* Panels side by side, each 520 × 380 pixels. */
int yf__plot_png(const yf__panel *panels, int n_panels, const char *path, yf_error *err);

/* A scatter plot of n points (xy[2i], xy[2i + 1]) coloured by class
 * (0 .. classes − 1, at most 10), with a legend. */
int yf__scatter_png(const float *xy, const int *cls, size_t n, int classes, const char *title,
                    const char *xlabel, const char *ylabel, const char *path, yf_error *err);

/* A heat map of a rows × cols table of counts (a confusion matrix): each
 * cell shaded by its share of its row and labelled with its count. */
int yf__heatmap_png(const double *counts, int rows, int cols, const char *title,
                    const char *row_axis, const char *col_axis, const char *path,
                    yf_error *err);

#endif
