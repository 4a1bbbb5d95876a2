/* digitnet export (int8 C for microcontrollers) and the --int8 quantisation that eval and serve
 * share with it. */
#include "cli.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdlib.h>
#include <string.h>

dn_status cli_quantize(cli_options *o, const dn_net *net, cli_data *data, dn_qnet **q, dn_error *err)
{
    cli_defaults_from_model(o, net);
    o->val_split = 0; /* calibrate on every training row the model had, and test on its test rows */
    dn_status st = cli_load_data(o, data, err);
    if (st != DN_OK)
        return st;
    int n = o->calibration ? o->calibration : DN_QUANT_DEFAULT_CALIBRATION;
    if ((st = dn_quantize(net, &data->train, n, q, err)) != DN_OK) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%.200s: %.300s", o->model, err->msg);
        snprintf(err->msg, sizeof err->msg, "%s", msg);
        cli_data_free(data);
    }
    return st;
}

int cmd_export(cli_options *o)
{
    if (!o->format)
        return cli_failf("export needs --format onnx (a model for ONNX runtimes) or --format c (int8 C source for a microcontroller)");
    if (!strcmp(o->format, "c"))
        return cmd_export_c(o);
    /* --format onnx never gets here: main() hands it to cmd_export_onnx (tools/cmd_onnx.c). */
    return cli_failf("--format: '%s' is not c or onnx", o->format);
}

int cmd_export_c(cli_options *o)
{
    if (!o->name || !o->out)
        return cli_failf("export --format c needs --name NAME and --out DIR");
    if (!dn_c_identifier(o->name))
        return cli_failf("--name '%s' is not a C identifier (letters, digits and _, not starting with a digit, at most 64)",
                         o->name);
    dn_error err = {0};
    dn_net *net = NULL;
    if (cli_load_saved(o, &net, &err) != DN_OK)
        return cli_fail(&err);
    cli_data data;
    dn_qnet *q = NULL;
    if (cli_quantize(o, net, &data, &q, &err) != DN_OK) {
        dn_net_free(net);
        return cli_fail(&err);
    }
    int status = 0, made = 0;
    dn_metrics mf, mq;
    if (dn_net_evaluate(net, &data.test, &mf, NULL, &err) != DN_OK || dn_qnet_evaluate(q, &data.test, &mq, NULL, &err) != DN_OK)
        status = cli_fail(&err);
    /* --out names a directory, made here if it is not there yet (its parent must be); a failed
     * export removes the directory it made, so a refused export leaves nothing behind */
    else if (!(made = mkdir(o->out, 0777) == 0) && errno != EEXIST)
        status = cli_failf("--out %s: cannot create the directory: %s", o->out, strerror(errno));
    else if (dn_qnet_export_c(q, o->name, o->out, &err) != DN_OK) {
        status = cli_fail(&err);
        if (made)
            rmdir(o->out);
    } else {
        size_t weights, arena;
        dn_qnet_sizes(q, &weights, &arena);
        char w[32], a[32];
        int n_cal = o->calibration ? o->calibration : DN_QUANT_DEFAULT_CALIBRATION;
        n_cal = n_cal < data.train.n ? n_cal : data.train.n;
        if (o->json) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "name", o->name);
            cJSON_AddStringToObject(j, "dir", o->out);
            cJSON_AddNumberToObject(j, "calibration_rows", n_cal);
            cJSON_AddNumberToObject(j, "test_rows", data.test.n);
            cJSON_AddNumberToObject(j, "float_accuracy", mf.accuracy);
            cJSON_AddNumberToObject(j, "int8_accuracy", mq.accuracy);
            cJSON_AddNumberToObject(j, "weight_bytes", (double)weights);
            cJSON_AddNumberToObject(j, "arena_bytes", (double)arena);
            cli_print_json(j);
        } else {
            printf("Wrote %s/%s.h and %s/%s.c (int8, calibrated on %d training rows)\n", o->out, o->name, o->out, o->name,
                   n_cal);
            printf("Test rows: %s\n", data.test_desc);
            printf("  float accuracy %.4f, int8 accuracy %.4f (%+.2f points)\n", mf.accuracy, mq.accuracy,
                   100.0 * (mq.accuracy - mf.accuracy));
            printf("  flash: %s bytes of weights, multipliers and tables, plus the code (kernels and predict)\n",
                   cli_thousands(weights, w));
            printf("  RAM:   %s bytes (%s_ARENA_BYTES: the largest pair of live activations)\n", cli_thousands(arena, a),
                   o->name);
        }
    }
    dn_qnet_free(q);
    cli_data_free(&data);
    dn_net_free(net);
    return status;
}
