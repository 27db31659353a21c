/* dd2_expf (core/fastmath.h) against libm's exp in double. */
#include <math.h>

#include "core/fastmath.h"
#include "test_util.h"

TEST(expf_accuracy) {
    double worst = 0;
    float wx = 0;
    for (float x = -87.3f; x < 88.72f; x += 0.000731f) {
        double e = exp((double)x), r = fabs(dd2_expf(x) - e) / e;
        if (r > worst) worst = r, wx = x;
    }
    printf("  dd2_expf: max relative error %.3g (at x = %g)\n", worst, wx);
    CHECK_MSG(worst < 2.5e-7, "%.3g at %g", worst, wx);
}

TEST(expf_special_values) {
    CHECK(dd2_expf(0.0f) == 1.0f);
    CHECK(dd2_expf(-INFINITY) == 0.0f);
    CHECK(dd2_expf(-100.0f) == 0.0f);
    CHECK(isinf(dd2_expf(100.0f)) && dd2_expf(100.0f) > 0);
    CHECK(isinf(dd2_expf(INFINITY)));
    CHECK(isnan(dd2_expf(NAN)));
    CHECK(1.0f / (1.0f + dd2_expf(100.0f)) == 0.0f); /* sigmoid(-100) is exactly 0, as with expf */
}

int main(int argc, char **argv) {
    (void)argc;
    test_init(argv[0]);
    RUN(expf_accuracy);
    RUN(expf_special_values);
    return test_summary();
}
