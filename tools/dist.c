/* The one place that talks MPI. digitnet is built with Open MPI when the Makefile finds it
 * (DN_HAVE_MPI) and joins an MPI job only when it was started by mpirun (its environment says so);
 * otherwise, and in a build without MPI, it is one process of one rank and every function here is
 * trivial. The library stays MPI-free: training reaches these functions through
 * dn_train_share.allgather. */
#include "dist.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef DN_HAVE_MPI
#include <mpi.h>
#endif

static int job_rank, job_size = 1, joined;

/* The watchdog: a rank that stops answering (stopped, stuck, on a dead network) without dying
 * would leave the others waiting in a training step's exchange for ever; Open MPI only notices
 * ranks that exit. A thread of each rank ends the job when one exchange has waited longer than
 * DIGITNET_MPI_TIMEOUT seconds (default 60). Only the per-batch exchanges are watched: the end of
 * cv and sweep waits as long as the slowest rank's folds take. */
static atomic_long waiting_since; /* monotonic seconds when the current exchange began, 0 when none */
static long timeout_seconds = 60;

static long now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec + 1; /* never 0 */
}

static void *watchdog(void *arg)
{
    (void)arg;
    for (;;) {
        usleep(250 * 1000);
        long since = atomic_load(&waiting_since);
        if (since && now_seconds() - since > timeout_seconds) {
            fprintf(stderr, "digitnet: rank %d: no answer from the other ranks for %ld s (DIGITNET_MPI_TIMEOUT); "
                            "ending the job\n", job_rank, timeout_seconds);
            fflush(stderr);
            _exit(1); /* mpirun sees a rank fail and ends the others */
        }
    }
    return NULL;
}

static void start_watchdog(void)
{
    const char *v = getenv("DIGITNET_MPI_TIMEOUT");
    if (v && atol(v) > 0)
        timeout_seconds = atol(v);
    pthread_t t;
    if (pthread_create(&t, NULL, watchdog, NULL) == 0)
        pthread_detach(t);
}

/* mpirun (Open MPI, PMIx) and MPICH's hydra leave these in every rank's environment. */
static int started_by_mpirun(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_SIZE");
}

int cli_dist_init(int *argc, char ***argv)
{
#ifdef DN_HAVE_MPI
    if (!started_by_mpirun())
        return 0;
    /* Waiting ranks yield the core instead of polling flat out: on cores shared with other work
     * (or more ranks than cores) polling ranks starve the ones still computing, and every step
     * waits for the slowest (2 ranks on this project's loaded 2-core machine: twice the speed).
     * On dedicated nodes OMPI_MCA_mpi_yield_when_idle=0 polls again. */
    setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
    int provided;
    /* Only the main thread calls MPI; OpenMP threads compute between the calls. */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "digitnet: MPI_Init failed\n");
        return -1;
    }
    joined = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &job_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &job_size);
    if (job_size > 1)
        start_watchdog();
#else
    (void)argc, (void)argv;
    if (started_by_mpirun() && getenv("OMPI_COMM_WORLD_RANK") && strcmp(getenv("OMPI_COMM_WORLD_RANK"), "0") != 0) {
        /* N copies of a one-process build would each do the whole job: let rank 0 do it, say why. */
        fprintf(stderr, "digitnet: this build has no MPI (rebuild with libopenmpi-dev installed); "
                        "rank %s does nothing, rank 0 runs alone\n", getenv("OMPI_COMM_WORLD_RANK"));
        exit(0);
    }
#endif
    return 0;
}

int cli_dist_rank(void) { return job_rank; }
int cli_dist_size(void) { return job_size; }
int cli_dist_active(void) { return joined && job_size > 1; }

void cli_dist_finish(void)
{
#ifdef DN_HAVE_MPI
    if (joined)
        MPI_Finalize();
#endif
    joined = 0;
}

void cli_dist_abort(int status)
{
#ifdef DN_HAVE_MPI
    if (joined) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, status ? status : 1);
    }
#endif
    exit(status);
}

void cli_dist_before_error(void)
{
    /* An error every rank meets (a NaN, a bad flag) is printed once, by rank 0, which then ends the
     * job (cli_dist_abort) while the others wait here; an error of one rank alone is printed by it
     * a moment later. */
    if (cli_dist_active() && job_rank != 0)
        usleep(1500 * 1000);
}

int cli_dist_share(void *buf, const size_t *byte_offsets)
{
#ifdef DN_HAVE_MPI
    if (!cli_dist_active())
        return 0;
    int counts[CLI_DIST_MAX_RANKS], displs[CLI_DIST_MAX_RANKS];
    if (job_size > CLI_DIST_MAX_RANKS)
        return -1;
    for (int r = 0; r < job_size; r++) {
        if (byte_offsets[r + 1] - byte_offsets[0] > 2147483647u)
            return -1; /* MPI counts are ints */
        counts[r] = (int)(byte_offsets[r + 1] - byte_offsets[r]);
        displs[r] = (int)(byte_offsets[r] - byte_offsets[0]);
    }
    char *base = (char *)buf + byte_offsets[0];
    return MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, base, counts, displs, MPI_BYTE, MPI_COMM_WORLD) ==
                   MPI_SUCCESS
               ? 0
               : -1;
#else
    (void)buf, (void)byte_offsets;
    return 0;
#endif
}

int cli_dist_allgather(void *user, float *buf, const size_t *offsets)
{
    (void)user;
    size_t bytes[CLI_DIST_MAX_RANKS + 1];
    if (job_size > CLI_DIST_MAX_RANKS)
        return -1;
    for (int r = 0; r <= job_size; r++)
        bytes[r] = offsets[r] * sizeof(float);
    atomic_store(&waiting_since, now_seconds());
    int failed = cli_dist_share(buf, bytes);
    atomic_store(&waiting_since, 0);
    return failed;
}

int cli_dist_any(int flag)
{
#ifdef DN_HAVE_MPI
    if (cli_dist_active()) {
        int any = 0;
        atomic_store(&waiting_since, now_seconds());
        MPI_Allreduce(&flag, &any, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD);
        atomic_store(&waiting_since, 0);
        return any;
    }
#endif
    return flag;
}

void cli_dist_range(int n_items, int rank, int *first, int *end)
{
    *first = (int)((long)n_items * rank / job_size);
    *end = (int)((long)n_items * (rank + 1) / job_size);
}

const dn_train_share *cli_dist_train_share(dn_train_share *share)
{
    if (!cli_dist_active())
        return NULL;
    *share = (dn_train_share){job_rank, job_size, cli_dist_allgather, NULL};
    return share;
}

const char *cli_dist_describe(void)
{
#ifdef DN_HAVE_MPI
    static char text[MPI_MAX_LIBRARY_VERSION_STRING + 64];
    char version[MPI_MAX_LIBRARY_VERSION_STRING] = "";
    int len = 0;
    MPI_Get_library_version(version, &len); /* callable before MPI_Init */
    version[strcspn(version, ",\n")] = '\0';
    if (joined)
        snprintf(text, sizeof text, "%s, rank %d of %d", version, job_rank, job_size);
    else
        snprintf(text, sizeof text, "%s (one process: not started by mpirun)", version);
    return text;
#else
    return "not built with MPI (install libopenmpi-dev and rebuild)";
#endif
}
