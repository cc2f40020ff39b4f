"""mxc.calibration: weights calibrated for their format from calibration data.

    gptq.py        GPTQ / MR-GPTQ for one layer, through the format's own quantizer
    sequential.py  every layer of a model in execution order, each on the outputs of the
                   already-calibrated layers before it (one forward pass over the calibration set)
"""
