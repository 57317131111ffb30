/* exp, log and log1p of a contiguous float64 buffer in place, four doubles at a time.

   numpy has SIMD float64 exp only with AVX-512; on an AVX2 CPU every element goes through
   libm's scalar exp (and log, log1p). glibc ships vector versions for AVX2 (libmvec's
   _ZGVdN4v_exp and _ZGVdN4v_log since glibc 2.22, _ZGVdN4v_log1p since 2.35; within
   4 ulp, with the scalar functions' results for infinities, NaN, zero, negative
   arguments, overflow, underflow and subnormals): this module calls them where the CPU
   has AVX2 and FMA and the C library is glibc on x86-64, and libm's scalar functions
   elsewhere (where VECTORIZED is False and bayesfmm.ops keeps numpy's). Measured in
   benchmarks/bench_compiled.py and bench_kernels.py. One job, no state beyond the CPU
   check made at import.

   Built by setup.py as an optional extension: without a C compiler the package installs
   without it and runs on numpy alone. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

typedef double (*scalar_fn)(double);

#if defined(__x86_64__) && defined(__GLIBC__) && defined(__GNUC__)
#define BAYESFMM_LIBMVEC 1
#include <immintrin.h>
/* glibc >= 2.22, libmvec (linked through libm's linker script) */
__m256d _ZGVdN4v_exp(__m256d);
__m256d _ZGVdN4v_log(__m256d);
typedef __m256d (*vector_fn)(__m256d);
#if __GLIBC_PREREQ(2, 35)
__m256d _ZGVdN4v_log1p(__m256d);
#define VECTOR_LOG1P _ZGVdN4v_log1p
#else
#define VECTOR_LOG1P NULL /* older glibc: libm's scalar log1p */
#endif

__attribute__((target("avx2,fma"))) static void apply_avx2(vector_fn f, double *x, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    for (; i + 4 <= n; i += 4) {
        _mm256_storeu_pd(x + i, f(_mm256_loadu_pd(x + i)));
    }
    if (i < n) { /* the tail through the same vector function: the same floats as a full block */
        double tail[4] = {1.0, 1.0, 1.0, 1.0};
        memcpy(tail, x + i, (size_t)(n - i) * sizeof(double));
        _mm256_storeu_pd(tail, f(_mm256_loadu_pd(tail)));
        memcpy(x + i, tail, (size_t)(n - i) * sizeof(double));
    }
}
#endif

static int vectorized = 0;

static PyObject *apply_inplace(PyObject *arg, scalar_fn scalar, const char *name
#ifdef BAYESFMM_LIBMVEC
                               , vector_fn vector
#endif
)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        return NULL;
    }
    if (view.itemsize != (Py_ssize_t)sizeof(double) || view.format == NULL
        || !(strcmp(view.format, "d") == 0 || strcmp(view.format, "<d") == 0 || strcmp(view.format, "=d") == 0)) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_TypeError, "%s needs a writable contiguous float64 buffer", name);
        return NULL;
    }
    Py_ssize_t n = view.len / (Py_ssize_t)sizeof(double);
    double *x = (double *)view.buf;
    Py_BEGIN_ALLOW_THREADS
#ifdef BAYESFMM_LIBMVEC
    if (vectorized && vector != NULL) {
        apply_avx2(vector, x, n);
    } else {
        for (Py_ssize_t i = 0; i < n; i++) x[i] = scalar(x[i]);
    }
#else
    for (Py_ssize_t i = 0; i < n; i++) x[i] = scalar(x[i]);
#endif
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

#ifdef BAYESFMM_LIBMVEC
#define APPLY(arg, fn, name, vector) apply_inplace(arg, fn, name, vector)
#else
#define APPLY(arg, fn, name, vector) apply_inplace(arg, fn, name)
#endif

static PyObject *exp_inplace(PyObject *self, PyObject *arg) { return APPLY(arg, exp, "exp_inplace", _ZGVdN4v_exp); }
static PyObject *log_inplace(PyObject *self, PyObject *arg) { return APPLY(arg, log, "log_inplace", _ZGVdN4v_log); }
static PyObject *log1p_inplace(PyObject *self, PyObject *arg) { return APPLY(arg, log1p, "log1p_inplace", VECTOR_LOG1P); }

static PyMethodDef methods[] = {
    {"exp_inplace", exp_inplace, METH_O,
     "exp_inplace(x)\n--\n\nReplace each element of the writable contiguous float64 buffer x by its "
     "exponential (libmvec's AVX2 exp where VECTORIZED, libm's exp otherwise)."},
    {"log_inplace", log_inplace, METH_O,
     "log_inplace(x)\n--\n\nReplace each element of the writable contiguous float64 buffer x by its "
     "natural logarithm (libmvec's AVX2 log where VECTORIZED, libm's log otherwise)."},
    {"log1p_inplace", log1p_inplace, METH_O,
     "log1p_inplace(x)\n--\n\nReplace each element of the writable contiguous float64 buffer x by "
     "log(1 + x) (libmvec's AVX2 log1p where VECTORIZED_LOG1P, libm's log1p otherwise)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_vecmath", "exp, log and log1p of a float64 buffer in place, vectorised with glibc's libmvec on AVX2.",
    -1, methods,
};

PyMODINIT_FUNC PyInit__vecmath(void)
{
#ifdef BAYESFMM_LIBMVEC
    __builtin_cpu_init();
    vectorized = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    int log1p_vectorized = 0;
#ifdef BAYESFMM_LIBMVEC
#if __GLIBC_PREREQ(2, 35)
    log1p_vectorized = vectorized;
#endif
#endif
    if (PyModule_AddIntConstant(m, "VECTORIZED", vectorized) < 0
        || PyModule_AddIntConstant(m, "VECTORIZED_LOG1P", log1p_vectorized) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
