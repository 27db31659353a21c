/* Status messages, log prefixes, durations and the progress line. */
#include <fcntl.h>
#include <unistd.h>

#include "core/log.h"
#include "core/progress.h"
#include "core/status.h"
#include "test_util.h"

/* Run fn with stderr redirected to a temp file; return what it wrote (static buffer). */
static const char *capture_stderr(void (*fn)(void)) {
    static char buf[8192];
    char path[] = "/tmp/dd2-test-core-XXXXXX";
    int fd = mkstemp(path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    fn();
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    close(fd);
    unlink(path);
    return buf;
}

static int failing_inner(dd2_status *st) { return DD2_FAIL(st, DD2_ERR_INPUT, "bad value %d", 7); }
static int failing_outer(dd2_status *st) {
    DD2_TRY_CTX(failing_inner(st), st, "loading %s", "x.yaml");
    return DD2_OK;
}

TEST(status_messages) {
    dd2_status st;
    dd2_status_clear(&st);
    CHECK(failing_outer(&st) == DD2_ERR_INPUT);
    CHECK(st.code == DD2_ERR_INPUT);
    CHECK_STREQ(st.msg, "loading x.yaml: bad value 7");
    CHECK(st.line > 0 && strstr(st.file, "test_core.c") && strcmp(st.func, "failing_inner") == 0);
    char buf[512];
    dd2_status_format(&st, 0, buf, sizeof buf);
    CHECK_STREQ(buf, "loading x.yaml: bad value 7");
    dd2_set_rank(3, 4);
    CHECK(failing_inner(&st) == DD2_ERR_INPUT);
    dd2_status_format(&st, 1, buf, sizeof buf);
    CHECK_MSG(strstr(buf, "bad value 7 [at ") && strstr(buf, "failing_inner(), rank 3]"), "%s", buf);
    dd2_set_rank(-1, 1);
    CHECK(DD2_FAIL(NULL, DD2_ERR_RUNTIME, "no status") == DD2_ERR_RUNTIME);
}

static void log_lines(void) {
    dd2_set_rank(2, 4);
    dd2_info("hello %d", 1);
    dd2_info0("only rank 0");
    dd2_warn("careful");
    dd2_set_rank(-1, 1);
    dd2_info0("single process");
}

TEST(log_prefix) {
    dd2_log_init();
    const char *out = capture_stderr(log_lines);
    CHECK_MSG(strstr(out, "[rank 2 t=") && strstr(out, "s] hello 1\n"), "%s", out);
    CHECK_MSG(!strstr(out, "only rank 0"), "%s", out);
    CHECK_MSG(strstr(out, "s] warning: careful\n"), "%s", out);
    CHECK_MSG(strstr(out, "[t=") && strstr(out, "s] single process\n"), "%s", out);
}

TEST(durations) {
    char b[32];
    dd2_format_duration(45.25, b, sizeof b);
    CHECK_STREQ(b, "45.2s");
    dd2_format_duration(723, b, sizeof b);
    CHECK_STREQ(b, "12m03s");
    dd2_format_duration(3 * 3600 + 7 * 60 + 5, b, sizeof b);
    CHECK_STREQ(b, "3h07m");
    dd2_format_duration(-1, b, sizeof b);
    CHECK_STREQ(b, "0.0s");
}

static void progress_run(void) {
    dd2_progress p;
    dd2_progress_begin(&p, "teacher", 10, 110, 1e-9); /* resumed at 10; print on every update */
    p.tty = 0;                                        /* the test's stderr is a file anyway */
    for (long i = 11; i <= 110; i++) {
        volatile double x = 0;
        for (int k = 0; k < 20000; k++) x += k;
        dd2_progress_update(&p, i, "loss 2.31");
    }
    dd2_progress_end(&p, "done");
}

TEST(progress_lines) {
    const char *out = capture_stderr(progress_run);
    CHECK_MSG(strstr(out, "teacher 11/110 (10.0%)") != NULL, "%.300s", out);
    CHECK_MSG(strstr(out, " it/s ETA ") && strstr(out, " | loss 2.31\n"), "%.300s", out);
    CHECK_MSG(strstr(out, "teacher 110/110 (100.0%)") && strstr(out, " took ") && strstr(out, "| done\n"), "%.300s",
              out);
}

int main(int argc, char **argv) {
    (void)argc;
    test_init(argv[0]);
    RUN(status_messages);
    RUN(log_prefix);
    RUN(durations);
    RUN(progress_lines);
    return test_summary();
}
