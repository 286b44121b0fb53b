#!/usr/bin/env python3
"""Fit the polynomial coefficients used by the vectorised erf/erfc/tanh in Sources/CFloatKernels.

Weighted least squares on Chebyshev nodes in double precision (math.erf/erfc/tanh as targets), then
prints the coefficients in Horner order (highest degree first) and the max relative error of the
double-precision evaluation. Re-run to regenerate; the C file pastes the printed arrays.
"""
import math
import numpy as np

def cheb_nodes(a, b, n=4000):
    k = np.arange(n)
    return (a + b) / 2 + (b - a) / 2 * np.cos((2 * k + 1) * np.pi / (2 * n))

def fit(xs, ys, deg, weight):
    # least squares on the monomial basis, weighted for relative error
    V = np.vander(xs, deg + 1)
    c, *_ = np.linalg.lstsq(V * weight[:, None], ys * weight, rcond=None)
    return c

def report(name, c, xs, f, g):
    approx = np.array([g(c, x) for x in xs])
    exact = np.array([f(x) for x in xs])
    rel = np.max(np.abs(approx - exact) / np.abs(exact))
    print(f"/* {name}: max rel err (double eval) {rel:.3e} */")
    print("{" + ", ".join(f"{v:.9e}f" for v in c) + "}")

# erf(x) = x * P(x^2) for |x| < 0.75
X = cheb_nodes(1e-4, 0.75)
T = X * X
Y = np.array([math.erf(x) / x for x in X])
c = fit(T, Y, 5, 1 / Y)
report("erf small: erf(x)/x = P(x^2), |x|<0.75", c, X, math.erf, lambda c, x: x * np.polyval(c, x * x))

# erfc(z) = exp(-z^2) * t * Q(t), t = 1/(1+0.5 z), 0.75 <= z <= 10
Z = cheb_nodes(0.75, 10.0)
Tt = 1 / (1 + 0.5 * Z)
Y = np.array([math.erfc(z) * math.exp(z * z) for z in Z]) / Tt
c = fit(Tt, Y, 9, 1 / Y)
report("erfc: erfc(z)*exp(z^2)/t = Q(t), t=1/(1+z/2), 0.75<=z<=10", c, Z, math.erfc,
       lambda c, z: math.exp(-z * z) * (1 / (1 + 0.5 * z)) * np.polyval(c, 1 / (1 + 0.5 * z)))

# tanh(x) = x + x^3 * R(x^2) for |x| < 0.55
X = cheb_nodes(1e-3, 0.55)
T = X * X
Y = np.array([(math.tanh(x) - x) / x**3 for x in X])
c = fit(T, Y, 5, 1 / np.abs(Y))
report("tanh small: (tanh(x)-x)/x^3 = R(x^2), |x|<0.55", c, X, math.tanh,
       lambda c, x: x + x**3 * np.polyval(c, x * x))
