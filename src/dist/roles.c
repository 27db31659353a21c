/* Process roles: the world split into learners and teacher-score workers (dist/roles.h). */
#include "dist/roles.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

int dd2_roles_init(dd2_roles *r, int T, const char *stage, dd2_status *st) {
    memset(r, 0, sizeof *r);
    r->learners = MPI_COMM_NULL;
    r->learner_rank = -1, r->worker = -1;
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (T < 0) return DD2_FAIL(st, DD2_ERR_INPUT, "dist.teacher_ranks = %d: must be 0 (colocated) or more", T);
    if (T >= size && T > 0)
        return DD2_FAIL(st, DD2_ERR_INPUT,
                        "%s: dist.teacher_ranks = %d leaves no learner among %d rank%s (use at most %d, or 0 for the "
                        "colocated layout where every rank is a learner with its own teacher)",
                        stage, T, size, size == 1 ? "" : "s", size - 1);
    r->T = T;
    r->L = size - T;
    r->is_worker = rank >= r->L;
    if (MPI_Comm_split(MPI_COMM_WORLD, r->is_worker ? MPI_UNDEFINED : 0, rank, &r->learners) != MPI_SUCCESS)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: MPI_Comm_split of the learners failed", stage);
    if (!r->is_worker) {
        MPI_Comm_rank(r->learners, &r->learner_rank);
        if (T > 0) r->worker = r->L + rank % T;
        return DD2_OK;
    }
    const int w = rank - r->L;
    for (int j = w; j < r->L; j += T) r->n_served++;
    r->served = DD2_MALLOC((size_t)(r->n_served > 0 ? r->n_served : 1) * sizeof(int), st);
    if (!r->served) return DD2_ERR_RUNTIME;
    for (int j = w, k = 0; j < r->L; j += T) r->served[k++] = j;
    return DD2_OK;
}

void dd2_roles_free(dd2_roles *r) {
    if (r->learners != MPI_COMM_NULL) MPI_Comm_free(&r->learners);
    free(r->served);
    memset(r, 0, sizeof *r);
    r->learners = MPI_COMM_NULL;
}

#define ROW 160

void dd2_roles_print(const dd2_roles *r, const dd2_mpi_env *env, const char *stage) {
    char role[40];
    if (r->is_worker) {
        char list[64] = "";
        for (int k = 0, off = 0; k < r->n_served && off < (int)sizeof list - 12; k++)
            off += snprintf(list + off, sizeof list - (size_t)off, "%s%d", k ? "," : "", r->served[k]);
        snprintf(role, sizeof role, "teacher (learners %s)", r->n_served ? list : "none");
    } else if (r->T > 0) {
        snprintf(role, sizeof role, "learner %d -> teacher %d", r->learner_rank, r->worker);
    } else {
        snprintf(role, sizeof role, "learner %d + teacher", r->learner_rank);
    }
    char row[ROW];
    snprintf(row, sizeof row, "%4d  %-20.20s  %-26.26s  %-6s  %d", env->rank, env->host, role, "cpu", env->local_rank);
    char *all = env->rank == 0 ? malloc((size_t)env->size * ROW) : NULL;
    MPI_Gather(row, ROW, MPI_CHAR, all, ROW, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (env->rank != 0) return;
    dd2_info("%s: layout: %d learner%s, %s", stage, r->L, r->L == 1 ? "" : "s",
             r->T ? "teacher-score workers on the last ranks" : "each with its own teacher (colocated)");
    dd2_info("  rank  host                  role                        device  local");
    for (int k = 0; all && k < env->size; k++) dd2_info("  %s", all + (size_t)k * ROW);
    free(all);
}
