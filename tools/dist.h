/* Running as one rank of an MPI job (tools/dist.c): the only MPI-aware part of digitnet. Outside
 * mpirun, or in a build without Open MPI, the job has one rank and these are no-ops. */
#ifndef DN_CLI_DIST_H
#define DN_CLI_DIST_H

#include "digitnet.h"

#include <stddef.h>

#define CLI_DIST_MAX_RANKS 1024

/* Joins the MPI job when started by mpirun. Returns -1 when that fails. */
int cli_dist_init(int *argc, char ***argv);
/* Leaves it (MPI_Finalize). */
void cli_dist_finish(void);
/* Ends every rank of the job with status (MPI_Abort); a plain exit outside a job. */
void cli_dist_abort(int status);
/* Called before an error message is printed: lets rank 0 speak first (see dist.c). */
void cli_dist_before_error(void);

int cli_dist_rank(void);
int cli_dist_size(void);
/* Part of a job of more than one rank. */
int cli_dist_active(void);

/* Every rank's bytes [byte_offsets[r], byte_offsets[r + 1]) of buf reach every rank; this rank
 * filled its own. Returns 0, or -1 when the exchange failed. */
int cli_dist_share(void *buf, const size_t *byte_offsets);
/* dn_train_share.allgather over MPI_COMM_WORLD. */
int cli_dist_allgather(void *user, float *buf, const size_t *offsets);
/* flag, or-ed over every rank (a stop that every rank must agree on). */
int cli_dist_any(int flag);
/* The items [*first, *end) of n_items that rank does: contiguous runs, balanced. */
void cli_dist_range(int n_items, int rank, int *first, int *end);
/* "Open MPI 4.1.4, rank 0 of 2", "Open MPI 4.1.4 (not started by mpirun)" or "not built with MPI". */
const char *cli_dist_describe(void);
/* Data-parallel training over the job's ranks: share filled in and returned; NULL outside a job. */
const dn_train_share *cli_dist_train_share(dn_train_share *share);

#endif
